#!/usr/bin/env bash
# Prepare a device call of benchmarks/gpu_check.sh, here (a machine with pip and the official MAT checkout):
#   bash benchmarks/gpu_prepare.sh --official-dir /path/to/MAT
# - .whl/: the wheels the GPU machine lacks, for its Python 3.12 / x86-64 (pip download, no dependencies resolved:
#   each one is named, pinned to the versions of requirements.txt).
# - .official-mat/: the official code the comparison imports (networks/, torch_utils/, dnnlib/ of fenglinglwb/MAT
#   at commit d273d89), copied, never committed: both folders are in .gitignore.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OFFICIAL=""
while [ $# -gt 0 ]; do
  case "$1" in
    --official-dir) OFFICIAL=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p .whl
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
for spec in webdataset==1.0.2 braceexpand==0.1.7 kornia==0.9.0 kornia_rs==0.2.0 pytorch-msssim==1.0.0; do
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]}" -d .whl "$spec"
done
ls -la .whl
if [ -n "$OFFICIAL" ]; then
  rm -rf .official-mat && mkdir -p .official-mat
  cp -r "$OFFICIAL/networks" "$OFFICIAL/torch_utils" "$OFFICIAL/dnnlib" .official-mat/
  commit=$(git -C "$OFFICIAL" rev-parse HEAD 2>/dev/null || echo "unknown (not a git checkout)")
  echo "$commit" > .official-mat/COMMIT
  echo "official code from $OFFICIAL (commit $commit) -> .official-mat/"
fi
du -sh .whl .official-mat 2>/dev/null || true
