"""Compare quality studies that differ in one setting (a loss-term ablation of the study's pipelines).

    python -m benchmarks.quality --arms bc --seeds 0 1 --contest-size 0 --out runs/abl/base
    python -m benchmarks.quality --arms bc --seeds 0 1 --contest-size 0 --out runs/abl/hole --set loss.mat_hole_ssim=1
    python -m benchmarks.compare_studies runs/abl/base runs/abl/hole --seeds 0 1

Each study keeps its pipelines' predictions on the held-out photos (`<out>/seed-<k>/eval/pred-<arm>`); this
rescores them and gives every pipeline of every later study against the same pipeline of the first, with the
two-level paired bootstrap of `benchmarks.study.bootstrap_diff` (seeds paired by number, then photos).

Within one study, `--preds` compares prediction folders by name instead (the first is the reference), e.g. (c) with
and without carried optimizer state against the same (b), on the val photos and, with `--test-set`, on the folders
`benchmarks.quality --test-set` wrote (`<seed>/eval-test-<set>/<name>`):

    python -m benchmarks.compare_studies runs/joint-revisit --seeds 0 1 2 --preds c-c-joint-at75 c-c-joint-at75-carry
    python -m benchmarks.compare_studies runs/joint-revisit --seeds 0 1 2 --test-set runs/source-split/contest-512 \
        --preds c-c-joint-at75-tile c-c-joint-at75-carry-tile
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


def scored_preds(study: Path, name: str, seeds: list[int], test_set: Path | None) -> list[dict]:
    """One evaluation per seed of the prediction folder `name`: the val photos' `eval/pred-<name>`, or with
    `test_set` the folder `eval-test-<set>/<name>` scored like a submission (lost region from input vs truth)."""
    if test_set is None:
        return [evaluate_files(seed_dir(study, s, seeds) / "eval" / f"pred-{name}", study / "eval" / "gt",
                               masks=study / "eval" / "masks") for s in seeds]  # fmt: skip
    return [evaluate_files(seed_dir(study, s, seeds) / f"eval-test-{test_set.name}" / name, test_set / "gt",
                           inputs=[str(test_set / "test.csv")]) for s in seeds]  # fmt: skip


def compare_preds(study: Path, names: list[str], seeds: list[int], test_set: Path | None) -> None:
    print("| pipeline | S | M | C | score | vs the first: M [95 % CI] | C [95 % CI] | score [95 % CI] |")
    print("|---|---|---|---|---|---|---|---|")
    ref = scored_preds(study, names[0], seeds, test_set)
    for name in names:
        runs = ref if name == names[0] else scored_preds(study, name, seeds, test_set)
        mean = mean_over(runs)
        cells = ["", "", ""] if name == names[0] else [ci_text(compare(runs, ref, k)) for k in ("M", "C", "score")]
        print(f"| {name} | {mean['S']:.4f} | {mean['M']:.4f} | {mean['C']:.4f} | {mean['score']:.4f} | "
              f"{' | '.join(cells)} |")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("studies", type=Path, nargs="+", help="study --out folders; the first is the reference")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--arms", default="bc")
    ap.add_argument("--preds", nargs="+", default=None, help="prediction folder names within one study (the first "
                    "is the reference) instead of arms across studies")  # fmt: skip
    ap.add_argument("--test-set", type=Path, default=None, help="with --preds: the folders scored on this "
                    "contest-layout set (benchmarks.quality --test-set) instead of the val photos")  # fmt: skip
    ns = ap.parse_args(argv)
    if ns.preds:
        if len(ns.studies) != 1:
            raise SystemExit("--preds compares folders within one study: give one study folder")
        compare_preds(ns.studies[0], ns.preds, ns.seeds, ns.test_set.resolve() if ns.test_set else None)
        return 0
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
