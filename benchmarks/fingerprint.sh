#!/usr/bin/env bash
# Proof that a change of structure is no change of behaviour: train a short run of every stage from the same seed
# and config, and print the sha256 of each exported weights file. Run it before and after a refactor (on the same
# machine: float results may differ between CPUs) and diff the two outputs.
#
#   benchmarks/fingerprint.sh OUT_DIR [REPO]       # REPO defaults to this checkout; PYTHON picks the interpreter
set -euo pipefail
OUT=$(realpath -m "${1:?usage: benchmarks/fingerprint.sh OUT_DIR [REPO]}")
REPO=$(realpath "${2:-$(dirname "$0")/..}")
PYTHON=${PYTHON:-python}
mkdir -p "$OUT"
cd "$REPO"
for stage in joint inpaint colorize gan_baseline detector; do
  PYTHONPATH="$REPO" "$PYTHON" -m restoration.train configs/tiny.yaml "stage=$stage" "run.name=fp-$stage" \
    "run.output_dir=$OUT" run.max_steps=4 run.tracking=false run.log_model=false > "$OUT/log-$stage.txt" 2>&1 \
    || { echo "FAILED $stage (see $OUT/log-$stage.txt)" >&2; exit 1; }
done
cd "$OUT" && sha256sum fp-*/final/*.safetensors
