"""Evaluation during training: the val split restored by the same `Pipeline` a user runs, scored like a submission.

Each rank restores its own disjoint part of the val split (the val loader guarantees every sample is seen exactly
once) with the stage's EMA networks, from the masked uint8 input alone: the lost region is found as
`restoration-predict` finds it, and each image is scored as `restoration-evaluate` scores it (the region derived
from input vs ground truth, `metrics.score_image`). Per-rank sums are all-reduced, so the mean is over samples, not
ranks. Val samples carry fixed masks, so the numbers are comparable across runs and resumes. Rank 0 also renders
image panels (input | known mask | inpainted gray | colorized | ground truth) of its first samples.

At the end of a run `choose` scores the candidate settings (`inference.choose_settings`) here, so the final val
score is the score of the export's default settings: what `restoration-predict` gives on the same files; and
`anchor_scores` scores the classical answers (`restoration.anchors`) on the same images by the same rule, so the
model's val score always stands beside what doing nothing, a classical fill and the true gray score there.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from einops import rearrange

from restoration.anchors import anchor_rgb
from restoration.data.color import rgb_to_gray_u8, signed_to_u8
from restoration.data.exact_mask import known_from_pair
from restoration.data.shards import DataConfig, prepare_batch
from restoration.inference import PER_IMAGE, VS_FILL, VS_NO_FLOOR, InferenceSettings, choose_settings
from restoration.metrics import mask_iou, score_image
from restoration.pipeline import Pipeline, Restored
from restoration.scoring import CONTEST_KEYS, KEYS  # the figures a submission is scored by

PANEL_COLUMNS = ("input", "known mask", "inpainted gray", "colorized", "ground truth")
VAL_ANCHORS = ("input", "telea", "true_gray")  # scored beside the model at the end of a run


def make_panel(gray_in: np.ndarray, restored: Restored, gt: np.ndarray) -> np.ndarray:
    """(H, 5W, 3) uint8, columns as in PANEL_COLUMNS."""
    rgb = lambda a: np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a  # noqa: E731
    columns = [gray_in, restored.known * 255, restored.gray, restored.rgb, gt]
    return np.concatenate([rgb(c.astype(np.uint8)) for c in columns], axis=1)


def user_batches(
    val_loader: Iterable[dict], device: torch.device, data_cfg: DataConfig, max_batches: int = 0
) -> Iterator[tuple[dict, np.ndarray, np.ndarray, np.ndarray]]:
    """Each val batch prepared on the device, with what a user and the scorer have of it, uint8 on the CPU: the
    masked gray inputs (B, H, W), the ground truths (B, H, W, 3) and their grays (B, H, W). At most `max_batches`
    batches (0 = all)."""
    for i, raw in enumerate(val_loader):
        if max_batches and i >= max_batches:
            break
        batch = prepare_batch(raw, device=device, cfg=data_cfg, train=False)
        inputs = signed_to_u8(batch["input"])[:, 0].cpu().numpy()  # (B, H, W): the masked gray a user has
        gts = signed_to_u8(batch["rgb"])
        gray_gts = rgb_to_gray_u8(gts)[:, 0].cpu().numpy()
        yield batch, inputs, rearrange(gts, "b c h w -> b h w c").cpu().numpy(), gray_gts


@torch.no_grad()
def evaluate(
    pipeline: Pipeline,
    settings: InferenceSettings,
    val_loader: Iterable[dict],
    accelerator: Accelerator,
    data_cfg: DataConfig,
    *,
    max_batches: int = 0,
    num_panels: int = 4,
    scores_masks: bool = False,
    seed: int = 0,
    per_image: dict[str, float] | None = None,
) -> tuple[dict[str, float], list[np.ndarray]]:
    """Mean S, M, C, score, PSNR (and the learned detector's mask IoU when the stage scores masks) over the whole
    val split, and the number of corrupt val samples met on the way (summed over ranks). `per_image`, when given,
    is filled with each image's contest score by sample key, from every rank (for a paired comparison)."""
    device = accelerator.device
    keys = (*KEYS, "mask_iou", "corrupt_samples")
    sums = torch.zeros(len(keys) + 1, dtype=torch.float64, device=device)  # last entry: sample count
    corrupt_before = getattr(val_loader, "corrupt_count", 0)
    panels: list[np.ndarray] = []
    mine: list[tuple[str, float]] = []
    for batch, inputs, gts, gray_gts in user_batches(val_loader, device, data_cfg, max_batches):
        names = [str(k) for k in batch["key"]]
        restored = pipeline.restore(list(inputs), settings=settings, seed=seed, keys=names)
        for j, result in enumerate(restored):
            known, _ = known_from_pair(inputs[j], gray_gts[j])
            scores = score_image(result.rgb, gts[j], known)
            mine.append((names[j], float(scores["score"])))
            for k, name in enumerate(KEYS):
                sums[k] += scores[name]
            if scores_masks:
                detected = torch.from_numpy(pipeline.detect(inputs[j], settings))[None]
                sums[keys.index("mask_iou")] += float(mask_iou(detected, batch["known_mask"][j].cpu())[0])
            if accelerator.is_main_process and len(panels) < num_panels:
                panels.append(make_panel(inputs[j], result, gts[j]))
        sums[-1] += len(restored)
    sums[keys.index("corrupt_samples")] = getattr(val_loader, "corrupt_count", 0) - corrupt_before
    if accelerator.num_processes > 1:
        sums = accelerator.reduce(sums, reduction="sum")
    if per_image is not None:
        per_image.update(gather_object(mine) if accelerator.num_processes > 1 else mine)
    count = max(float(sums[-1]), 1.0)
    scores = {k: float(sums[j]) / count for j, k in enumerate(keys)}
    scores["corrupt_samples"] = float(sums[keys.index("corrupt_samples")])  # a count over ranks, not a mean
    if not scores_masks:
        scores.pop("mask_iou")
    scores["samples"] = float(sums[-1])
    return scores, panels


def choice_lines(results: dict[str, dict], chosen: InferenceSettings, width: int) -> list[str]:
    """One readable line per candidate of `choose` (its scores, its lower bound against the kept setting when the
    rule recorded one, the winner marked), for the log of whoever ran the choice: the trainer and `rechoose`."""
    lines = []
    for label, m in results.items():
        line = "  ".join(f"{k}={m[k]:.4f}" for k in CONTEST_KEYS)
        line += f"  vs fill: lower bound {m[VS_FILL]:+.4f}" if VS_FILL in m else ""
        line += f"  vs no floor: lower bound {m[VS_NO_FLOOR]:+.4f}" if VS_NO_FLOOR in m else ""
        mark = "  <- chosen" if label == chosen.label() else ""
        lines.append(f"inference {label:>{width}} on the val split: {line}{mark}")
    return lines


def choose(
    pipeline: Pipeline, val_loader: Iterable[dict], accelerator: Accelerator, data_cfg: DataConfig, *,
    max_batches: int = 0, num_panels: int = 4, scores_masks: bool = False,
) -> tuple[InferenceSettings, dict[str, dict], list[np.ndarray]]:  # fmt: skip
    """The settings the export keeps (chosen on the val split when the pipeline has any to choose, else its
    defaults), every candidate's scores by label, and the chosen setting's panels (a collective call)."""
    runs: dict[str, tuple[dict, list[np.ndarray]]] = {}

    def score(settings: InferenceSettings) -> dict[str, Any]:
        per_image: dict[str, float] = {}
        runs[settings.label()] = evaluate(
            pipeline, settings, val_loader, accelerator, data_cfg, max_batches=max_batches, num_panels=num_panels,
            scores_masks=scores_masks, per_image=per_image,
        )  # fmt: skip
        scores = runs[settings.label()][0]
        scores[PER_IMAGE] = per_image  # for the chooser, which records its bound (`VS_FILL`) here too
        return scores

    if pipeline.has_choices:
        chosen, _ = choose_settings(score, pipeline.defaults, colorizes=pipeline.colorizes)
    else:
        chosen = pipeline.defaults
        score(chosen)
    results = {label: {k: v for k, v in scores.items() if k != PER_IMAGE} for label, (scores, _) in runs.items()}
    return chosen, results, runs[chosen.label()][1]


@torch.no_grad()
def anchor_scores(
    val_loader: Iterable[dict], accelerator: Accelerator, data_cfg: DataConfig, *, max_batches: int = 0,
    names: Sequence[str] = VAL_ANCHORS,
) -> tuple[dict[str, dict[str, float]], int]:  # fmt: skip
    """Each anchor's mean S, M, C and score over the images `evaluate` scores (the same batches, the same user input,
    the same region rule and `score_image`), and the number of images (a collective call: per-rank sums are
    all-reduced). Costs one pass over the val split and the classical fill of each image."""
    sums = np.zeros((len(names), len(CONTEST_KEYS) + 1))  # last column: image count
    for _, inputs, gts, gray_gts in user_batches(val_loader, accelerator.device, data_cfg, max_batches):
        for gray_in, gt, gray_gt in zip(inputs, gts, gray_gts, strict=True):
            known, _ = known_from_pair(gray_in, gray_gt)
            for a, name in enumerate(names):
                scores = score_image(anchor_rgb(name, gray_in, known, gray_gt), gt, known)
                sums[a] += [*(scores[k] for k in CONTEST_KEYS), 1.0]
    total = torch.from_numpy(sums).to(accelerator.device)
    if accelerator.num_processes > 1:
        total = accelerator.reduce(total, reduction="sum")
    total = total.cpu().numpy()
    images = int(total[0, -1]) if len(names) else 0
    means = total[:, :-1] / max(images, 1)
    return {name: dict(zip(CONTEST_KEYS, map(float, row))) for name, row in zip(names, means)}, images
