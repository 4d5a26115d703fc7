"""MAT against the classical fill on M, per val photo, for trained inpainters (issue 22: `mat.prior`).

    python -m benchmarks.prior_eval --shards SHARDS --arm none RUN/final [RUN/final ...] --arm fill RUN/final ...
    python -m benchmarks.prior_eval --contest CONTEST_DIR --arm ...     # photos laid out as the contest's

Each arm is one training recipe, one export per seed. Every export restores the shards' val split (its baked
contest-style masks, the lost region found from the input as `restoration-predict` finds it) with MAT (`tile`) and
with the pipeline's classical fill (`fill`); the torch harmonic fill (`restoration.models.fill_prior`, where an
untrained `mat.prior: fill` starts) is scored beside them. Prints per arm the mean M and score of each and MAT's
paired differences to both fills with a 95 % interval (two-level bootstrap over seeds, then photos:
`benchmarks.study.bootstrap_diff`), then each arm's MAT against the first arm's; `--json` keeps the per-photo
figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.quality import val_samples
from benchmarks.study import bootstrap_diff, ci_text
from restoration.anchors import gray_rgb
from restoration.data.color import rgb_to_gray_u8
from restoration.data.exact_mask import known_from_pair
from restoration.metrics import score_image
from restoration.models.fill_prior import harmonic_fill
from restoration.pipeline import load_pipeline

KEYS = ("M", "score")


def pil_gray_u8(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) uint8, PIL's 'L'."""
    return rgb_to_gray_u8(torch.from_numpy(np.array(rgb)).permute(2, 0, 1))[0].numpy()


def mean_of(runs: list[dict[str, dict[str, float]]], key: str) -> float:
    """The mean of `key` over photos, averaged over runs."""
    return float(np.mean([np.mean(list(r[key].values())) for r in runs]))


def harmonic_answer(gray_in: np.ndarray, known: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: the torch harmonic fill of a uint8 gray."""
    img = torch.from_numpy(gray_in.copy()).float()[None, None] / 127.5 - 1.0  # (1, 1, H, W)
    filled = harmonic_fill(img, torch.from_numpy(known).float()[None, None])
    return gray_rgb(((filled[0, 0] + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy())


def score_export(export: Path, samples: list[dict], mode: str) -> dict[str, dict[str, float]]:
    """Per key (M, score): photo -> value, the export restoring every val sample with `inpaint_mode=mode`."""
    pipeline = load_pipeline([export])
    settings = pipeline.defaults.but(inpaint_mode=mode)
    restored = pipeline.restore([s["input"] for s in samples], settings=settings, keys=[s["key"] for s in samples])
    out: dict[str, dict[str, float]] = {k: {} for k in KEYS}
    for s, r in zip(samples, restored, strict=True):
        known, _ = known_from_pair(s["input"], pil_gray_u8(s["gt"]))
        scores = score_image(r.rgb, s["gt"], known)
        for k in KEYS:
            out[k][s["key"]] = scores[k]
    return out


def contest_samples(contest: Path) -> list[dict]:
    """The photos of a contest-style folder (`test_input/`, `gt/`; `benchmarks.study.contest_eval_set`)."""
    return [
        {"key": p.stem, "input": np.asarray(Image.open(p)), "gt": np.asarray(Image.open(contest / "gt" / p.name))}
        for p in sorted((contest / "test_input").glob("*.png"))
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.prior_eval", description=__doc__.split("\n")[0])
    photos = parser.add_mutually_exclusive_group(required=True)
    photos.add_argument("--shards", type=Path, help="shards whose val split is scored")
    photos.add_argument("--contest", type=Path, help="or a contest-style folder (test_input/, gt/)")
    parser.add_argument("--arm", nargs="+", action="append", required=True, metavar=("NAME", "EXPORT"))
    parser.add_argument("--json", type=Path, default=None)
    ns = parser.parse_args(argv)
    if ns.contest:
        samples = contest_samples(ns.contest)
    else:
        with tempfile.TemporaryDirectory() as scratch:  # val_samples also writes the scorer's files: not needed here
            samples = val_samples(ns.shards, Path(scratch))
    harmonic: dict[str, dict[str, float]] = {k: {} for k in KEYS}
    for s in samples:
        known, _ = known_from_pair(s["input"], pil_gray_u8(s["gt"]))
        scores = score_image(harmonic_answer(s["input"], known), s["gt"], known)
        for k in KEYS:
            harmonic[k][s["key"]] = scores[k]
    results: dict[str, dict] = {"harmonic": harmonic}
    first_tile = None
    for name, *exports in ns.arm:
        tile = [score_export(Path(e), samples, "tile") for e in exports]
        fill = [score_export(Path(e), samples, "fill") for e in exports]
        gains = [float(getattr(load_pipeline([Path(e)]).networks["inpainter"].synthesis, "prior_gain", torch.nan))
                 for e in exports]  # fmt: skip
        results[name] = {"exports": exports, "tile": tile, "fill": fill, "prior_gain": gains}
        print(f"{name}: {len(exports)} seed(s), {len(samples)} photos, prior_gain {gains}")
        for k in KEYS:
            d = bootstrap_diff([r[k] for r in tile], [r[k] for r in fill])
            print(f"  {k}: MAT tile {mean_of(tile, k):.4f}  classical fill {mean_of(fill, k):.4f}  harmonic fill "
                  f"{mean_of([harmonic], k):.4f}  MAT - fill {ci_text(d)} ({d['wins']}/{d['photos']})")  # fmt: skip
            d = bootstrap_diff([r[k] for r in tile], [harmonic[k]] * len(tile))
            print(f"  {k}: MAT - harmonic fill {ci_text(d)} ({d['wins']}/{d['photos']})")
        if first_tile is None:
            first_tile = (name, tile)
        else:
            for k in KEYS:
                d = bootstrap_diff([r[k] for r in tile], [r[k] for r in first_tile[1]])
                print(f"  {k}: MAT {name} - MAT {first_tile[0]} {ci_text(d)} ({d['wins']}/{d['photos']})")
    if ns.json:
        ns.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
