"""A training config over seeds, reported on the test split of `benchmarks.source_split` (sources never trained or
tuned on), through `restoration-predict` at the contest's size, against the answers that need no training.

    python -m benchmarks.preset_eval train --split runs/source-split --config configs/cpu30.yaml --tag base \\
        --seeds 0 1 2 [--set loss.hue_hist=4 ...]                 # trains (reused when done), predicts, scores
    python -m benchmarks.preset_eval score --split runs/source-split --tag base --seeds 0 1 2 \\
        --as base+flip -- --chroma-flip                          # the same models, other restoration-predict flags
    python -m benchmarks.preset_eval ingest --split runs/source-split --tag old --seeds 0 1 2
                                                                 # scores pred/old-seedK, written by other code
    python -m benchmarks.preset_eval report --split runs/source-split --tags base base+flip --vs base

Every choice a training makes (its inference settings) is made on the split's val sources; the test photos are
only scored. `report` prints each tag's mean (and spread) over seeds and its paired difference to `--vs` with a 95 %
interval from a two-level bootstrap (seeds, then photos: `benchmarks.study.bootstrap_diff`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.study import ci_text, compare, score_with_predict
from restoration import train
from restoration.scoring import score_anchors, score_contest_folder

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("S", "M", "C", "score")


def result_path(split: Path, tag: str, seed: int) -> Path:
    return split / "results" / f"{tag}-seed{seed}.json"


def train_and_score(split: Path, config: Path, tag: str, seed: int, overrides: list[str], flags: list[str]) -> dict:
    """Train one seed (reused when its export exists), then score its export on the test photos."""
    meta = json.loads((split / "split.json").read_text())
    run_dir = split / "runs" / f"{tag}-seed{seed}"
    if not (run_dir / "final" / "pipeline.json").is_file():
        start = time.perf_counter()
        args = [str(config), f"run.name={run_dir.name}", f"run.output_dir={run_dir.parent}", f"run.seed={seed}",
                f"data.root={meta['shards']}", "run.log_model=false", *overrides]  # fmt: skip
        if train.main(args) != 0:
            raise SystemExit(f"{tag} seed {seed}: training failed")
        (run_dir / "train_seconds.txt").write_text(f"{time.perf_counter() - start:.0f}\n")
    return score(split, tag, seed, run_dir, flags)


def score(split: Path, tag: str, seed: int, run_dir: Path, flags: list[str]) -> dict:
    contest = Path(json.loads((split / "split.json").read_text())["test"])
    result = score_with_predict([run_dir], contest, split / "pred" / f"{tag}-seed{seed}", flags)
    return keep(split, tag, seed, result)


def ingest(split: Path, tag: str, seed: int) -> dict:
    """Score predictions another checkout (an older commit, another tool) wrote to `pred/TAG-seedK` for the test
    photos, so that they enter `report`'s paired intervals like this checkout's own runs."""
    contest = Path(json.loads((split / "split.json").read_text())["test"])
    pred = split / "pred" / f"{tag}-seed{seed}"
    if not pred.is_dir():
        raise SystemExit(f"{pred}: no such folder (restoration-predict --input {contest / 'test.csv'} --out {pred})")
    return keep(split, tag, seed, score_contest_folder(pred, contest))


def keep(split: Path, tag: str, seed: int, result: dict) -> dict:
    path = result_path(split, tag, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result))
    print(f"{tag} seed {seed}: " + "  ".join(f"{k}={result['mean'][k]:.4f}" for k in KEYS))
    return result


def anchors(split: Path) -> dict[str, dict]:
    """The answers that need no training on the same test photos (computed once)."""
    path = split / "results" / "anchors.json"
    if not path.is_file():
        contest = Path(json.loads((split / "split.json").read_text())["test"])
        found = score_anchors(contest, split / "pred", ("input", "telea", "true_gray"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(found))
    return json.loads(path.read_text())


def report(split: Path, tags: list[str], seeds: list[int], vs: str | None) -> str:
    rows = ["| answer | seeds | S | M | C | score | score spread | vs " + (vs or "-") + " (score) | vs (C) |",
            "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    names = {"input": "the masked input unchanged", "telea": "classical fill of the gray (Telea), no color",
             "true_gray": "the true gray, no color (best gray answer)"}  # fmt: skip
    for key, r in anchors(split).items():
        m = r["mean"]
        rows.append(f"| {names[key]} | - | " + " | ".join(f"{m[k]:.4f}" for k in KEYS) + " | - | - | - |")
    load = lambda tag: [json.loads(result_path(split, tag, s).read_text()) for s in seeds]  # noqa: E731
    ref = load(vs) if vs else None
    for tag in tags:
        runs = load(tag)
        means = {k: float(np.mean([r["mean"][k] for r in runs])) for k in KEYS}
        spread = float(np.std([r["mean"]["score"] for r in runs]))
        diff = [ci_text(compare(runs, ref)), ci_text(compare(runs, ref, "C"))] if ref and tag != vs else ["-", "-"]
        rows.append(f"| {tag} | {len(runs)} | " + " | ".join(f"{means[k]:.4f}" for k in KEYS)
                    + f" | ±{spread:.4f} | {diff[0]} | {diff[1]} |")  # fmt: skip
    count = load(tags[0])[0]["count"]
    return (
        f"{count} test photos (sources never trained or tuned on), contest-style masks, scored like a submission\n\n"
        + "\n".join(rows)
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    flags = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m benchmarks.preset_eval", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=("train", "score", "ingest", "report"))
    parser.add_argument("--split", type=Path, default=Path("runs/source-split"))
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "cpu30.yaml")
    parser.add_argument("--tag", default="base")
    parser.add_argument("--as", dest="as_tag", default=None, help="score: the tag these flags' results are kept as")
    parser.add_argument("--tags", nargs="+", default=[])
    parser.add_argument("--vs", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="training overrides")
    ns = parser.parse_args(argv)
    if ns.action == "train":
        for seed in ns.seeds:
            train_and_score(ns.split, ns.config, ns.tag, seed, ns.set, flags)
    elif ns.action == "score":
        for seed in ns.seeds:
            score(ns.split, ns.as_tag or ns.tag, seed, ns.split / "runs" / f"{ns.tag}-seed{seed}", flags)
    elif ns.action == "ingest":
        for seed in ns.seeds:
            ingest(ns.split, ns.tag, seed)
    else:
        table = report(ns.split, ns.tags, ns.seeds, ns.vs)
        (ns.split / "results" / "report.md").write_text(table + "\n")
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
