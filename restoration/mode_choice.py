"""The inpaint mode a trained pipeline restores best with, measured on its own val split when training ends.

At CPU scale a MAT trained for minutes paints noisy texture in the hole, which the contest's M (SSIM in the lost
region) scores below a classical fill of the gray; with the official weights at 512 px MAT is expected to win
(BENCHMARKS.md, quality study). Which one a given model should use is therefore measured, not assumed: the trainer
restores the val shards' samples (held-out photos, fixed masks, their true lost region) once with MAT (`tile`) and
once with the classical `fill`, both under the trained colorizer, scores them with the contest metric and records
the winner in the export's `pipeline.json` (`inference.inpaint_mode`), the default of `restoration-predict`,
`restoration-evaluate` and the MLflow model. A tie keeps MAT.

Only the inpaint mode is chosen here: val samples are at the training size, where `tile` and `resize` (and the
two color modes) restore the same pixels. The choice is made on the split that validation reports, so the score it
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
from restoration.weights import record_inference

log = logging.getLogger(__name__)

CANDIDATES = ("tile", "fill")  # MAT first: it is kept on a tie
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


def score_mode(final_dir: Path, samples: list[dict[str, np.ndarray]], mode: str, device: torch.device) -> dict:
    """Mean S, M, C, score and PSNR of the pipeline in `final_dir` restoring `samples` with inpaint `mode`."""
    pipeline = load_pipeline([final_dir], device, inpaint_mode=mode)
    restored = pipeline.restore([s["input"] for s in samples], known=[s["known"] for s in samples])
    pred = torch.from_numpy(np.stack([r.rgb for r in restored])).permute(0, 3, 1, 2)
    gt = torch.from_numpy(np.stack([s["gt"] for s in samples]))
    known = torch.from_numpy(np.stack([s["known"] for s in samples]))[:, None]
    parts = contest_score(pred, gt, known)
    means = {k: float(v.mean()) for k, v in parts.items()}
    return {**means, "psnr": float(psnr(pred, gt).mean())}


def choose_inpaint_mode(
    final_dir: Path, data_cfg: DataConfig, device: torch.device, max_samples: int = 256
) -> tuple[str, dict[str, dict]]:
    """Score every candidate mode on the val split, record the best in `final_dir/pipeline.json` and the table in
    `final_dir/inference_modes.json`; returns (best mode, scores per mode)."""
    samples = val_samples(data_cfg, max_samples)
    if not samples:
        raise ValueError(f"{data_cfg.root}: no val samples to choose the inference mode on")
    results = {mode: score_mode(final_dir, samples, mode, device) for mode in CANDIDATES}
    best = max(CANDIDATES, key=lambda m: (results[m]["score"], -CANDIDATES.index(m)))
    record_inference(final_dir, inpaint_mode=best)
    table = {"chosen": best, "samples": len(samples), "split": "val", "scores": results}
    (final_dir / RESULT_FILE).write_text(json.dumps(table, indent=2))
    return best, results
