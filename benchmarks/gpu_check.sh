#!/usr/bin/env bash
# The GPU check, one command (at most 8 minutes on one H200-class GPU); writes reports/bench_gpu.json:
#
#   benchmarks/gpu_check.sh                  # on a machine with a CUDA GPU
#   benchmarks/gpu_check.sh --cpu-dry-run    # anywhere: every part at tiny sizes on the CPU (no figures)
#
# Needs torch + torchvision (any CUDA build), numpy, pandas, pillow, matplotlib, pytest, opencv, and
# the pure-Python packages PyYAML, tqdm, cityscapesScripts (every part), dvclive (the pipeline part)
# and ruamel.yaml + dvc (optional: without dvc the stages run one after another). A part whose
# packages are missing is skipped and named in the JSON. Where nothing can be downloaded, carry them:
#
#   benchmarks/gpu_check.sh --download-wheels wheels/   # on a connected machine, same Python version
#   WHEELS=wheels/ benchmarks/gpu_check.sh              # on the GPU machine: installs them offline first
#
# PYTHON=/path/to/python picks the interpreter (default: .venv/bin/python, else python3). Other
# arguments go to benchmarks/gpu_check.py (--help).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
# The extra packages at the versions requirements.txt pins (torch & co. stay as the machine has them).
extras() { grep -iE '^(dvc|dvclive|cityscapesScripts|PyYAML|ruamel\.yaml|tqdm)==' requirements.txt | sed 's/ *#.*//'; }

if [ "${1:-}" = "--download-wheels" ]; then
    dir=${2:?usage: benchmarks/gpu_check.sh --download-wheels DIR}
    # shellcheck disable=SC2046
    "$PYTHON" -m pip download --dest "$dir" $(extras)
    echo "wheels in $dir: copy them to the GPU machine, then run WHEELS=$dir benchmarks/gpu_check.sh"
    exit 0
fi
if [ -n "${WHEELS:-}" ]; then
    # shellcheck disable=SC2046
    "$PYTHON" -m pip install --no-index --find-links "$WHEELS" $(extras)
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
exec "$PYTHON" benchmarks/gpu_check.py "$@"
