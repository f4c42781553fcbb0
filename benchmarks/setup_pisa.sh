#!/usr/bin/env bash
# Make a virtual environment with the BM25 peers that are not retrievekit dependencies: PISA (the pyterrier-pisa wheel:
# PISA's C++ engine behind PyTerrier) and tantivy (the Rust engine's Python bindings), for
# benchmarks/run_bm25_pruning.py (--pisa-python VENV/bin/python) and run_bm25_indexing.py (--peers-python ...).
#
# Usage: benchmarks/setup_pisa.sh [VENV_DIR]      (default benchmarks/work/pisa-env). PyPI only; no Java needed:
# PISA's indexer and query processor are native code in the wheel.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${1:-${PISA_VENV:-$here/work/pisa-env}}"
if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
fi
"$venv/bin/python" -c "import pyterrier_pisa, tantivy" 2>/dev/null ||
    "$venv/bin/pip" install -q "pyterrier-pisa==${PISA_VERSION:-0.4.9}" "tantivy==${TANTIVY_VERSION:-0.27.0}"
"$venv/bin/python" -c "import pyterrier_pisa, tantivy, sys; print(sys.executable)"
