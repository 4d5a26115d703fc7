"""One trained model on the held-out dev photos at contest size, beside the classical anchors, scored like a
submission, with paired bootstrap CIs against the Telea fill and the input unchanged.

    python -m benchmarks.contest_eval --model runs/cpu30 --photos ../shared/photos --out runs/contest-eval

The held-out photos are the shards' val split (`study.contest_eval_set`: same keys, same rule as
`restoration-shards photos`), as 512 px center crops with contest-style masks; the model runs through
`restoration-predict`'s own code path with the defaults recorded in its `pipeline.json` (plus any `--variant`
flags), and every answer is scored by `restoration-evaluate`'s scorer from input vs ground truth.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks import study

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "photos")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--variant", action="append", default=[], metavar="FLAGS",
                    help="also score the model with these predict flags, e.g. '--chroma-scale 1'")  # fmt: skip
    ap.add_argument("--json", type=Path, default=None)
    ns = ap.parse_args(argv)

    contest = study.contest_eval_set(ns.photos, ns.out, size=ns.size)
    anchors = study.score_anchors(contest, ns.out / "anchors", [ns.model])
    rows = {f"anchor: {k}": v for k, v in anchors.items()}
    rows["model (its recorded defaults)"] = study.score_with_predict([ns.model], contest, ns.out / "pred-default", [])
    for i, flags in enumerate(ns.variant):
        pred_dir = ns.out / f"pred-variant-{i}"
        rows[f"model {flags}"] = study.score_with_predict([ns.model], contest, pred_dir, flags.split())
    print(f"\n{anchors['input']['count']} held-out photos at {ns.size} px, scored like a submission")
    print(f"{'answer':<44} {'S':>7} {'M':>7} {'C':>7} {'score':>7}   vs telea: score diff [95 % CI] (wins), M diff")
    summary = {}
    for name, r in rows.items():
        m = r["mean"]
        versus = ""
        entry = {"mean": m, "count": r["count"]}
        if name != "anchor: telea":
            d, dm = study.compare([r], [anchors["telea"]]), study.compare([r], [anchors["telea"]], "M")
            entry["vs_telea"], entry["M_vs_telea"] = d, dm
            versus = f"{study.ci_text(d)} ({d['wins']}/{d['photos']}), M {study.ci_text(dm)}"
        summary[name] = entry
        print(f"{name:<44} {m['S']:7.4f} {m['M']:7.4f} {m['C']:7.4f} {m['score']:7.4f}   {versus}")
    if ns.json:
        ns.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
