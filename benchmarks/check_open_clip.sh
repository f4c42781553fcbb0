#!/usr/bin/env bash
# The open-clip backend's tests in an environment where open_clip imports. open_clip needs torchvision, and no
# PyPI torchvision loads beside the CPU torch 2.13.0 this project pins, so CI cannot run them: this script builds a
# separate virtualenv with a matching torch/torchvision pair (x86_64: torch 2.14.1 + torchvision 0.29.1; several GB,
# a CUDA build that runs on the CPU), installs open_clip_torch and retrievekit's core needs there, and runs
# tests/encoders/test_clip_backends.py with the checkout's sources on PYTHONPATH.
#   bash benchmarks/check_open_clip.sh [VENV_DIR]        (default: ${TMPDIR:-/tmp}/retrievekit-open-clip-venv)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-${TMPDIR:-/tmp}/retrievekit-open-clip-venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q torch==2.14.1 torchvision==0.29.1
  # torch named again so that nothing in open_clip's or retrievekit's requirements moves it
  "$venv/bin/pip" install -q torch==2.14.1 open_clip_torch "sentence-transformers>=3.0" "transformers>=4.40" \
    "numpy>=1.24" "scipy>=1.10" "PyStemmer>=2.2" "regex>=2023.0" "tqdm>=4.60" "threadpoolctl>=3.1" \
    "Pillow>=10" "ImageHash>=4.3" pytest
fi
"$venv/bin/python" -c "import open_clip, torch, torchvision; print('open_clip', open_clip.__version__, 'torch', torch.__version__, 'torchvision', torchvision.__version__)"
PYTHONPATH="$PWD/src" "$venv/bin/python" -m pytest -q -p no:cacheprovider -rs tests/encoders/test_clip_backends.py
