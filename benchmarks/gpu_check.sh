#!/usr/bin/env bash
# The GPU check in one device call: installs what the GPU machine lacks, then runs benchmarks/gpu_check.py.
#
# Prepare here, once per session (the folders are git-ignored and travel with `carry`):
#   bash benchmarks/gpu_prepare.sh --official-dir /path/to/MAT     # wheels -> .whl/, official code -> .official-mat/
# Then one device call (timeout_s 600; the check keeps to an 8-minute deadline of its own):
#   run(command="bash benchmarks/gpu_check.sh --out $OUT", carry=[".whl", ".official-mat"], timeout_s=600)
# and copy the table from $OUT/gpu_check.md into BENCHMARKS.md.
#
# The GPU machine has torch, accelerate, timm, einops, pytest, numpy, pillow, scipy and scikit-image, but not
# webdataset (+ braceexpand), kornia (+ kornia_rs) or pytorch-msssim: they come from .whl/ (pip download, see
# gpu_prepare.sh) and are installed with --no-index into /tmp/site. MLflow is not needed: the check trains with
# run.tracking=false. Here (no GPU): bash benchmarks/gpu_check.sh --cpu --tiny --out /tmp/gpu-check (seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! $PY -c "import webdataset, kornia, pytorch_msssim, braceexpand" 2>/dev/null; then
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "missing packages and no .whl/ folder: run benchmarks/gpu_prepare.sh here and carry .whl" >&2
    exit 2
  fi
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
args=("$@")
if [ -d .official-mat/networks ] && [[ " $* " != *" --official-dir "* && " $* " != *" --tiny "* ]]; then
  args+=(--official-dir .official-mat)
fi
exec $PY -m benchmarks.gpu_check "${args[@]}"
