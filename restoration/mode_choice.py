"""The inference settings a trained export restores best with, measured on its own val split when training ends.

At CPU scale a MAT trained for minutes paints noisy texture in the hole, which the contest's M (SSIM in the lost
region) scores below a classical fill of the gray; with the official weights at 512 px MAT is expected to win
(BENCHMARKS.md, quality study). Which one a given model should use is therefore measured, not assumed: at the end of
an `inpaint`, `colorize` or `joint` run the trainer restores the val shards' samples (held-out photos, fixed masks,
their true lost region) with the export once in `tile` mode (MAT; a colorizer-only export leaves the hole as the
input has it) and once with the classical `fill` (under the colorizer, if any), scores both with the contest metric
and records the winner in the export's `pipeline.json` (`inference.inpaint_mode`), the default of
`restoration-predict`, `restoration-evaluate` and the MLflow model. A tie keeps `tile`. Where a pipeline chains
several exports, the first one that records a mode decides (`pipeline.load_pipeline`).

With a colorizer, the strength of its color is measured next (`chroma_scale` 1, 0.75, 0.5, 0.25, on the chosen
inpaint mode): the contest's S and M compare RGB channels with the truth, so an uncertain colorizer's wrong
saturation costs SSIM, while C compares hue histograms, which a smaller chroma keeps. A user who wants full color
passes `--chroma-scale 1`. Not chosen here: `resize` against `tile` and the two color modes, which restore the same
pixels on val samples at the training size. The choice is made on the split that validation reports, so the score it
records is slightly optimistic for that split; a two-way choice on a few hundred images has little room to
overfit, and the quality study checks the default on photos no training run saw.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from restoration.data.color import signed_to_u8
from restoration.data.shards import DataConfig, make_val_loader, prepare_batch
from restoration.metrics import contest_score, psnr
from restoration.pipeline import load_pipeline
from restoration.weights import record_inference, resolve_source

log = logging.getLogger(__name__)

INPAINT_CANDIDATES = ("tile", "fill")  # `tile` first: it is kept on a tie
CHROMA_SCALES = (1.0, 0.75, 0.5, 0.25)  # 1 first: full color is kept on a tie
RESULT_FILE = "inference_modes.json"


def val_samples(data_cfg: DataConfig, max_samples: int) -> list[dict[str, np.ndarray]]:
    """Up to `max_samples` val samples as the contest gives them: the masked gray input (uint8, fill included), the
    true known mask and the color ground truth."""
    samples: list[dict[str, np.ndarray]] = []
    for raw in make_val_loader(data_cfg, batch_size=16, rank=0, world_size=1):
        batch = prepare_batch(raw, device=torch.device("cpu"), cfg=data_cfg, train=False)
        for gray, known, rgb in zip(signed_to_u8(batch["input"]), batch["known_mask"], signed_to_u8(batch["rgb"])):
            samples.append({"input": gray[0].numpy(), "known": known[0].numpy().astype(np.uint8), "gt": rgb.numpy()})
            if len(samples) >= max_samples:
                return samples
    return samples


def score_setting(
    final_dir: Path, samples: list[dict[str, np.ndarray]], device: torch.device, *, inpaint_mode: str,
    chroma_scale: float = 1.0,
) -> dict:  # fmt: skip
    """Mean S, M, C, score and PSNR of the export in `final_dir` restoring `samples` with these settings."""
    pipeline = load_pipeline([final_dir], device, inpaint_mode=inpaint_mode, chroma_scale=chroma_scale)
    restored = pipeline.restore([s["input"] for s in samples], known=[s["known"] for s in samples])
    pred = torch.from_numpy(np.stack([r.rgb for r in restored])).permute(0, 3, 1, 2)
    gt = torch.from_numpy(np.stack([s["gt"] for s in samples]))
    known = torch.from_numpy(np.stack([s["known"] for s in samples]))[:, None]
    parts = contest_score(pred, gt, known)
    means = {k: float(v.mean()) for k, v in parts.items()}
    return {**means, "psnr": float(psnr(pred, gt).mean())}


def setting_label(inpaint_mode: str, chroma_scale: float = 1.0) -> str:
    """How a setting is named in the results table, the log and MLflow: `fill`, `fill, chroma x0.75`."""
    return inpaint_mode if chroma_scale == 1 else f"{inpaint_mode}, chroma x{chroma_scale:g}"


def best_of(results: dict, candidates: list) -> object:
    """The candidate with the highest score; on a tie the one listed first."""
    return max(candidates, key=lambda c: (results[c]["score"], -candidates.index(c)))


def choose_inference(
    final_dir: Path, data_cfg: DataConfig, device: torch.device, max_samples: int = 256
) -> tuple[dict, dict[str, dict]]:
    """Score the candidate settings on the val split, record the best in `final_dir/pipeline.json` and the table in
    `final_dir/inference_modes.json`; returns (the chosen settings, scores per setting)."""
    samples = val_samples(data_cfg, max_samples)
    if not samples:
        raise ValueError(f"{data_cfg.root}: no val samples to choose the inference settings on")
    results: dict[str, dict] = {}
    for mode in INPAINT_CANDIDATES:
        results[mode] = score_setting(final_dir, samples, device, inpaint_mode=mode)
    mode = best_of(results, list(INPAINT_CANDIDATES))
    chosen: dict = {"inpaint_mode": mode}
    if resolve_source(final_dir).file("color_G") is not None:
        labels = {scale: setting_label(mode, scale) for scale in CHROMA_SCALES}
        for scale in CHROMA_SCALES[1:]:
            results[labels[scale]] = score_setting(final_dir, samples, device, inpaint_mode=mode, chroma_scale=scale)
        scale = best_of({s: results[labels[s]] for s in CHROMA_SCALES}, list(CHROMA_SCALES))
        chosen["chroma_scale"] = scale
    record_inference(final_dir, **chosen)
    table = {"chosen": chosen, "samples": len(samples), "split": "val", "scores": results}
    (final_dir / RESULT_FILE).write_text(json.dumps(table, indent=2))
    return chosen, results
