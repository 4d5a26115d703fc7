"""Compare quality studies that differ in one setting (a loss-term ablation of the study's pipelines).

    python -m benchmarks.quality --arms bc --seeds 0 1 --contest-size 0 --out runs/abl/base
    python -m benchmarks.quality --arms bc --seeds 0 1 --contest-size 0 --out runs/abl/hole --set loss.mat_hole_ssim=1
    python -m benchmarks.compare_studies runs/abl/base runs/abl/hole --seeds 0 1

Each study keeps its pipelines' predictions on the held-out photos (`<out>/seed-<k>/eval/pred-<arm>`); this
rescores them and gives every pipeline of every later study against the same pipeline of the first, with the
two-level paired bootstrap of `benchmarks.study.bootstrap_diff` (seeds paired by number, then photos).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.study import ci_text, compare, mean_over, seed_dir
from restoration.scoring import evaluate_files


def scored(study: Path, arm: str, seeds: list[int]) -> list[dict]:
    """One evaluation per seed of pipeline `arm` (a letter) of a study."""
    return [
        evaluate_files(
            seed_dir(study, s, seeds) / "eval" / f"pred-{arm}",
            study / "eval" / "gt",
            masks=study / "eval" / "masks",
        )  # fmt: skip
        for s in seeds
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("studies", type=Path, nargs="+", help="study --out folders; the first is the reference")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--arms", default="bc")
    ns = ap.parse_args(argv)
    print("| study | pipeline | S | M | C | score | vs the first: score [95 % CI] | M [95 % CI] |")
    print("|---|---|---|---|---|---|---|---|")
    for arm in ns.arms:
        ref = scored(ns.studies[0], arm, ns.seeds)
        for study in ns.studies:
            runs = ref if study == ns.studies[0] else scored(study, arm, ns.seeds)
            mean = mean_over(runs)
            cells = ["", ""]
            if study != ns.studies[0]:
                cells = [ci_text(compare(runs, ref, key)) for key in ("score", "M")]
            print(f"| {study.name} | ({arm}) | {mean['S']:.4f} | {mean['M']:.4f} | {mean['C']:.4f} | "
                  f"{mean['score']:.4f} | {cells[0]} | {cells[1]} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
