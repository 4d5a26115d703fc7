"""Evaluation during training: the contest score on the val shards, distributed over ranks, with EMA weights.

Each rank scores its own disjoint part of the val split (the val loader guarantees every sample is seen exactly
once), then per-rank sums are all-reduced, so the mean is over samples, not over ranks. Val samples carry fixed
masks, so the numbers are comparable across runs and resumes. Rank 0 also renders image panels
(input | known mask | inpainted gray | colorized | ground truth) of its first samples.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from accelerate import Accelerator
from einops import rearrange
from torch import Tensor

from restoration.data.color import signed_to_u8
from restoration.data.shards import DataConfig, prepare_batch
from restoration.metrics import contest_score, mask_iou, psnr

PANEL_COLUMNS = ("input", "known mask", "inpainted gray", "colorized", "ground truth")


def make_panels(batch: dict[str, Tensor], out: dict[str, Tensor], count: int) -> list[np.ndarray]:
    """(H, 5W, 3) uint8 panels, one per sample, columns as in PANEL_COLUMNS."""
    to_rgb = lambda x: signed_to_u8(x).expand(-1, 3, -1, -1)  # noqa: E731 - (B, 1|3, H, W) [-1, 1] -> uint8 RGB
    columns = [
        to_rgb(batch["input"]),
        (batch["known_mask"] * 255).to(torch.uint8).expand(-1, 3, -1, -1),
        to_rgb(out["gray"]),
        to_rgb(out["rgb"]),
        to_rgb(batch["rgb"]),
    ]
    strip = torch.cat(columns, dim=3)[:count]  # (b, 3, H, 5W)
    return list(rearrange(strip, "b c h w -> b h w c").cpu().numpy())


@torch.no_grad()
def evaluate(
    task,
    val_loader: Iterable[dict],
    accelerator: Accelerator,
    data_cfg: DataConfig,
    *,
    max_batches: int = 0,
    num_panels: int = 4,
    with_mask_iou: bool = False,
) -> tuple[dict[str, float], list[np.ndarray]]:
    """Mean S, M, C, score, PSNR (and mask IoU when the task predicts masks) over the whole val split, and the number
    of corrupt val samples met on the way (summed over ranks)."""
    device = accelerator.device
    keys = ("S", "M", "C", "score", "psnr", "mask_iou", "corrupt_samples")
    sums = torch.zeros(len(keys) + 1, dtype=torch.float64, device=device)  # last entry: sample count
    corrupt_before = getattr(val_loader, "corrupt_count", 0)
    panels: list[np.ndarray] = []
    for i, raw in enumerate(val_loader):
        if max_batches and i >= max_batches:
            break
        batch = prepare_batch(raw, device=device, cfg=data_cfg, train=False)
        generator = torch.Generator(device=device).manual_seed(10_000 + i)
        out = task.predict(batch, generator=generator)
        pred_u8, gt_u8 = signed_to_u8(out["rgb"]), signed_to_u8(batch["rgb"])
        parts = contest_score(pred_u8, gt_u8, batch["known_mask"])
        values = [parts["S"], parts["M"], parts["C"], parts["score"], psnr(pred_u8, gt_u8)]
        if "known_mask" in out:
            values.append(mask_iou(out["known_mask"], batch["known_mask"]))
        else:
            values.append(torch.zeros_like(parts["score"]))
        for j, v in enumerate(values):
            sums[j] += v.double().sum()
        sums[-1] += pred_u8.shape[0]
        if accelerator.is_main_process and len(panels) < num_panels:
            panels.extend(make_panels(batch, out, num_panels - len(panels)))
    sums[keys.index("corrupt_samples")] = getattr(val_loader, "corrupt_count", 0) - corrupt_before
    if accelerator.num_processes > 1:
        sums = accelerator.reduce(sums, reduction="sum")
    count = max(float(sums[-1]), 1.0)
    scores = {k: float(sums[j]) / count for j, k in enumerate(keys)}
    scores["corrupt_samples"] = float(sums[keys.index("corrupt_samples")])  # a count over ranks, not a mean
    if not with_mask_iou:
        scores.pop("mask_iou")
    scores["samples"] = float(sums[-1])
    return scores, panels
