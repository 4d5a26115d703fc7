"""The `head: bins` colorizer's annealed-mean temperature, swept on a trained export: each temperature restores a
val set (where a choice would be made) and a test set (reported only) through restoration-predict. Why: the
temperature is a readout choice, not a training one, so one trained model answers it; it moves C both ways (a
mode-like readout concentrates the hues, the mean greys them).

    python -m benchmarks.readout_temperature runs/source-split/runs/bins1k-seed0/final --out runs/tsweep \\
        --sets val=runs/source-split/valset/contest-512 test=runs/source-split/contest-512 --temperatures 0.15 0.38 0.7
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from benchmarks.study import score_with_predict

KEYS = ("S", "M", "C", "score")


def with_temperature(export: Path, temperature: float, dst: Path) -> Path:
    """A copy of the export whose pipeline.json reads its bins out at `temperature`."""
    copy = dst / f"T{temperature:g}" / "final"
    if not copy.exists():
        shutil.copytree(export, copy)
        meta = json.loads((copy / "pipeline.json").read_text())
        if meta["colorizer"]["head"] != "bins":
            raise SystemExit(f"{export}: its colorizer has no bins to read out (head {meta['colorizer']['head']})")
        meta["colorizer"]["temperature"] = temperature
        (copy / "pipeline.json").write_text(json.dumps(meta, indent=1))
    return copy


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", type=Path, help="a trained export with `colorizer.head: bins`")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sets", nargs="+", required=True, metavar="NAME=CONTEST", help="contest folders to score")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.15, 0.38, 0.7])
    parser.add_argument("flags", nargs="*", help="restoration-predict flags after --, e.g. -- --chroma-scale 1")
    ns = parser.parse_args(argv)
    sets = dict(s.split("=", 1) for s in ns.sets)
    print("| temperature | set | " + " | ".join(KEYS) + " |\n|---|---|" + "---|" * len(KEYS))
    for t in ns.temperatures:
        model = with_temperature(ns.export, t, ns.out)
        for name, contest in sets.items():
            mean = score_with_predict([model], Path(contest), ns.out / f"pred-T{t:g}-{name}", ns.flags)["mean"]
            print(f"| {t:g} | {name} | " + " | ".join(f"{mean[k]:.4f}" for k in KEYS) + " |", flush=True)


if __name__ == "__main__":
    main()
