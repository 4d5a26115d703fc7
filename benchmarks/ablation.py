"""Loss-term ablation of a training preset: is each score-aligned term worth its weight?

    python -m benchmarks.ablation --config configs/cpu30.yaml --photos ../shared/photos --out runs/ablation
    python -m benchmarks.ablation --config configs/cpu30.yaml --arm "no ssim" loss.ssim=0 --seeds 0 1

Each arm is the preset with a few `loss.*` (or any) overrides: a term switched off (its weight 0) or a default-off
term switched on. Every arm trains on the same shards with the same seeds, then, as a user would use it, is run
through `restoration-predict` (with the inference settings its own training recorded) on the held-out dev photos at
contest size with contest-style masks (`study.contest_eval_set`) and scored like a submission. The table gives
each arm's mean and its difference from the preset as it is, with a paired two-level bootstrap interval (seeds,
then photos). Finished arms are reused when the script runs again. Results: `benchmarks/results/ablation_<tag>.*`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks import study
from restoration import train
from restoration.config import load_config
from restoration.recipe import TrainConfig

ROOT = Path(__file__).resolve().parents[1]

PRESET = "the preset"
# the colorizer's terms (the CPU preset trains only the colorizer): S-, C- and M-aligned, and the GAN term
DEFAULT_ARMS = {
    PRESET: [],
    "no whole-image SSIM (S term)": ["loss.ssim=0"],
    "no hue histogram (C term)": ["loss.hue_hist=0"],
    "no adversarial term": ["loss.color_adv=0"],
    "+ hole SSIM (M term), weight 1": ["loss.color_hole_ssim=1"],
}


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")[:40] or "arm"


def train_once(config: Path, out: Path, shards: Path, name: str, overrides: list[str], seed: int) -> Path:
    run = f"{slug(name)}-s{seed}"
    run_dir = out / run
    if (run_dir / "final" / "pipeline.json").is_file():
        print(f"{run}: already trained, reused")
        return run_dir
    args = [str(config), f"run.name={run}", f"run.output_dir={out}", f"data.root={shards}", f"run.seed={seed}",
            *overrides]  # fmt: skip
    print(f"\n=== {name}, seed {seed}: {' '.join(overrides) or '(as configured)'} ===", flush=True)
    start = time.perf_counter()
    if train.main(args) != 0:
        raise SystemExit(f"{run}: training failed")
    (run_dir / "ablation_train_s.txt").write_text(f"{time.perf_counter() - start:.1f}\n")
    return run_dir


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "cpu30.yaml")
    ap.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "photos")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--arm", nargs="+", action="append", default=None, metavar="NAME_THEN_KEY=VALUE",
                    help="an arm: its name, then its overrides (repeat; default: the colorizer's terms)")  # fmt: skip
    ap.add_argument("--size", type=int, default=512, help="contest size of the held-out photos")
    ap.add_argument("--tag", default="cpu30")
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    ns = ap.parse_args(argv)
    arms = {PRESET: [], **{a[0]: a[1:] for a in ns.arm}} if ns.arm else DEFAULT_ARMS
    cfg = load_config(TrainConfig, ns.config, [])
    ns.out.mkdir(parents=True, exist_ok=True)
    shards = study.build_data(ns.photos, ns.out, cfg.data.image_size)
    contest = study.contest_eval_set(ns.photos, ns.out, size=ns.size)

    results: dict[str, list[dict]] = {}
    for name, overrides in arms.items():
        for seed in ns.seeds:
            run_dir = train_once(ns.config, ns.out, shards, name, overrides, seed)
            pred = ns.out / "pred" / run_dir.name
            results.setdefault(name, []).append(study.score_with_predict([run_dir], contest, pred, []))

    lines = [f"{results[PRESET][0]['count']} held-out photos at {ns.size} px, seeds {ns.seeds}, "
             f"{ns.config.name}; each arm with the inference settings its training chose", "",
             "| arm | overrides | S | M | C | score | vs the preset: score [95 % CI] | M [95 % CI] |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    record = {"config": str(ns.config.name), "seeds": ns.seeds, "size": ns.size, "arms": {}}
    for name, runs in results.items():
        mean = study.mean_over(runs)
        entry: dict = {"overrides": arms[name], "mean": mean}
        cells = ["", ""]
        if name != PRESET:
            d, dm = study.compare(runs, results[PRESET]), study.compare(runs, results[PRESET], "M")
            entry["vs_preset"], entry["M_vs_preset"] = d, dm
            cells = [study.ci_text(d), study.ci_text(dm)]
        record["arms"][name] = entry
        lines.append(f"| {name} | {' '.join(arms[name]) or '-'} | {mean['S']:.4f} | {mean['M']:.4f} | {mean['C']:.4f} "
                     f"| **{mean['score']:.4f}** | {cells[0]} | {cells[1]} |")  # fmt: skip
    anchors = study.score_anchors(contest, ns.out / "anchors")
    lines += [
        "",
        "against the classical anchors (no training; `telea` is OpenCV's fill of the gray, no color):",
        "",
        "| answer | S | M | C | score | vs telea: score [95 % CI] | M [95 % CI] |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in [*((f"anchor: {k}", [v]) for k, v in anchors.items()), *results.items()]:
        mean = study.mean_over(r)
        d, dm = study.compare(r, [anchors["telea"]] * len(r)), study.compare(r, [anchors["telea"]] * len(r), "M")
        record.setdefault("vs_telea", {})[name] = {"mean": mean, "score": d, "M": dm}
        lines.append(f"| {name} | {mean['S']:.4f} | {mean['M']:.4f} | {mean['C']:.4f} | {mean['score']:.4f} | "
                     f"{study.ci_text(d)} | {study.ci_text(dm)} |")  # fmt: skip
    table = "\n".join(lines) + "\n"
    ns.results.mkdir(parents=True, exist_ok=True)
    (ns.results / f"ablation_{ns.tag}.md").write_text(table)
    (ns.results / f"ablation_{ns.tag}.json").write_text(json.dumps(record, indent=2))
    print("\n" + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
