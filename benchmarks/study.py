"""What the quality study (`benchmarks.quality`) shares with the scripts built on it (`benchmarks.ablation`,
`benchmarks.contest_eval`, `benchmarks.compare_studies`): its data, scoring like a submission, and the statistics
over seeds and photos.

- data: shards of a photo folder (`build_data`) and the held-out photos laid out as the contest does
  (`contest_eval_set`: the shards' val split, same keys, same rule, as center crops with contest-style masks);
- scoring: the anchors (`score_anchors`, `restoration.scoring`) and a model through `restoration-predict`'s
  own code path (`score_with_predict`), every answer scored from input vs ground truth (`restoration.scoring`);
- statistics: the two-level paired bootstrap (`bootstrap_diff`: seeds, then photos) and the tables' helpers
  (`compare`, `mean_over`, `ci_text`); where one seed's runs live (`seed_dir`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from restoration import predict, scoring
from restoration.data.masks import MaskConfig, sample_known_mask
from restoration.image_io import read_rgb, write_png_atomic
from restoration.pipeline import load_pipeline
from restoration.predict import pick_device
from restoration.scoring import score_contest_folder

# -- data ----------------------------------------------------------------------------------------------------


def build_data(photos: Path, out: Path, size: int) -> Path:
    from restoration.data.shard_build import build_photo_shards

    shards = out / "data" / f"shards-{size}"
    if not (shards / "manifest.json").is_file():
        manifest = build_photo_shards(photos, shards, size=size, val_fraction=0.2, samples_per_shard=64, workers=2,
                                      seed=0, progress=True, val_masks="contest")  # fmt: skip
        print(f"shards: {manifest['totals']} -> {shards}")
    return shards


def contest_eval_set(
    photos: Path, out: Path, *, size: int = 512, val_fraction: float = 0.2, seed: int = 0,
    val_groups: tuple[str, ...] = (),
) -> Path:  # fmt: skip
    """The held-out photos (the shards' val split: same keys, same rule, `val_groups` included) as the contest lays
    them out: `size` px center crops in `gt/`, masked gray inputs in `test_input/` and `test.csv`. Masks alternate
    seeded between the two contest styles: a random polygon with one gray fill (test inputs) and a near-black
    circle or square (train inputs). Scored like a submission: the lost region is derived from input vs ground
    truth."""
    from restoration.data.shard_sources import list_photos, plan_shards

    contest = out / f"contest-{size}"
    if (contest / "test.csv").is_file():
        return contest
    sources, _ = list_photos(photos)
    plans = plan_shards(sources, val_fraction=val_fraction, samples_per_shard=64, val_groups=val_groups)
    val = [src for plan in plans if plan.split == "val" for src in plan.sources]
    rows = ["input_image_path"]
    styles = {0: MaskConfig(test_style=1.0, train_style=0.0, free_form=0.0),
              1: MaskConfig(test_style=0.0, train_style=1.0, free_form=0.0)}  # fmt: skip
    for i, src in enumerate(sorted(val, key=lambda s: s.key)):
        gt = np.asarray(ImageOps.fit(Image.fromarray(read_rgb(photos / src.gt)), (size, size), Image.BICUBIC))
        gray = np.asarray(Image.fromarray(gt).convert("L"))
        known, fill = sample_known_mask(np.random.default_rng([seed, i]), size, size, styles[i % 2])
        write_png_atomic(gt, contest / "gt" / f"{src.key}.png")
        write_png_atomic(np.where(known == 1, gray, fill).astype(np.uint8), contest / "test_input" / f"{src.key}.png")
        rows.append(f"./test_input/{src.key}.png")
    (contest / "test.csv").write_text("\n".join(rows) + "\n")
    return contest


# -- scoring like a submission ---------------------------------------------------------------------------------


def score_anchors(contest: Path, dst: Path, colorizer: list[Path] | None = None) -> dict[str, dict]:
    """Input unchanged, Telea and NS fills (biharmonic without OpenCV), the true gray, and (with `colorizer`) the
    true gray colored by that colorizer: scored like a submission."""
    results = scoring.score_anchors(contest, dst)
    if colorizer:
        pairs = scoring.contest_pairs(contest)
        pipeline = load_pipeline(colorizer, pick_device("auto"))
        restored = pipeline.restore(
            [p["gray_gt"] for p in pairs], known=[np.ones_like(p["known"]) for p in pairs],
            settings=pipeline.defaults.but(inpaint_mode="tile"), keys=[p["key"] for p in pairs],
        )  # fmt: skip
        results["true_gray_colorized"] = scoring.score_answers(
            contest, pairs, [r.rgb for r in restored], dst / "anchor-true_gray_colorized"
        )
    return results


def score_with_predict(models: list[Path], contest: Path, pred_dir: Path, flags: list[str]) -> dict:
    """restoration-predict's own code path (`predict.main` with `flags`, lost region found by the pipeline), then
    scored from input vs ground truth."""
    args = [a for m in models for a in ("--model", str(m))]
    args += ["--input", str(contest / "test.csv"), "--out", str(pred_dir), "--device", "auto", *flags]
    if predict.main(args) != 0:
        raise SystemExit(f"restoration-predict failed on {models}")
    return score_contest_folder(pred_dir, contest)


# -- statistics over seeds and photos --------------------------------------------------------------------------


def per_image(result: dict, key: str = "score") -> dict[str, float]:
    return {r["name"]: r[key] for r in result["images"]}


def bootstrap_diff(
    a: list[dict[str, float]], b: list[dict[str, float]], resamples: int = 5000, seed: int = 0
) -> dict[str, float]:
    """Mean of (a - b) and its 95 % interval by a two-level paired bootstrap: seeds drawn with replacement (a's and
    b's runs of one seed stay paired), then photos drawn with replacement (the same photos for both), so the
    interval holds both the run-to-run spread of training and the choice of photos."""
    names = sorted(set.intersection(*(set(x) for x in a + b)))
    A = np.array([[x[n] for n in names] for x in a])  # (seeds, photos)
    B = np.array([[x[n] for n in names] for x in b])
    diff = A - B
    rng = np.random.default_rng(seed)
    k, n = diff.shape
    draws = np.empty(resamples)
    for i in range(resamples):
        rows = diff[rng.integers(0, k, k)]
        draws[i] = rows[:, rng.integers(0, n, n)].mean()
    return {"mean": float(diff.mean()), "lo": float(np.percentile(draws, 2.5)), "hi": float(np.percentile(draws, 97.5)),
            "wins": int((diff.mean(axis=0) > 0).sum()), "photos": n, "seeds": k}  # fmt: skip


def compare(runs: list[dict], ref: list[dict], key: str = "score") -> dict[str, float]:
    """`bootstrap_diff` of one metric between two lists of evaluations (one per seed, paired by position)."""
    return bootstrap_diff([per_image(r, key) for r in runs], [per_image(r, key) for r in ref])


def mean_over(runs: list[dict], keys: tuple[str, ...] = ("S", "M", "C", "score")) -> dict[str, float]:
    """The mean of each metric over several evaluations of one pipeline (its seeds)."""
    return {k: float(np.mean([r["mean"][k] for r in runs])) for k in keys}


def ci_text(d: dict[str, float]) -> str:
    """A difference and its interval as the tables print it: `+0.0125 [+0.0027, +0.0226]`."""
    return f"{d['mean']:+.4f} [{d['lo']:+.4f}, {d['hi']:+.4f}]"


def seed_dir(out: Path, seed: int, seeds: list[int]) -> Path:
    """Where one seed's runs live: `out` itself for a one-seed study of seed 0 (the layout of earlier studies),
    else `out/seed-<k>`."""
    return out if seeds == [0] else out / f"seed-{seed}"
