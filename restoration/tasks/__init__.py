"""One object per training stage: which networks it trains, its `train_step` and its `predict`.

The loop in `restoration/train.py` only knows the `Task` protocol; the GAN maths are pure functions in
`restoration/losses/` and the parts every stage shares (optimizers, EMA, schedule, export) are assembled once in
`tasks/parts.py`. No inheritance, no registry: `build_task` is an explicit `if`.
"""

from __future__ import annotations

from typing import Protocol

import torch
from accelerate import Accelerator
from torch import Tensor

from restoration.recipe import TrainConfig
from restoration.tasks.parts import StageParts


class Task(Protocol):
    parts: StageParts

    def train_step(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        """One micro-batch of every network's update; returns detached scalars (and `skipped`)."""

    def predict(self, batch: dict[str, Tensor], generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """EMA outputs: `gray` (B, 1, H, W) and `rgb` (B, 3, H, W) in [-1, 1]; `known_mask` for the detector."""


def build_task(cfg: TrainConfig, accelerator: Accelerator, *, images_per_step: int, bf16: bool) -> Task:
    """The stage of `cfg.stage`, with unprepared networks and their optimizers."""
    if cfg.stage == "joint":
        from restoration.tasks.joint import JointStage as stage_cls
    elif cfg.stage == "inpaint":
        from restoration.tasks.inpainting import InpaintStage as stage_cls
    elif cfg.stage == "colorize":
        from restoration.tasks.colorization import ColorizeStage as stage_cls
    elif cfg.stage == "detector":
        from restoration.tasks.detection import DetectionStage as stage_cls
    elif cfg.stage == "gan_baseline":
        from restoration.tasks.gan import GanBaselineStage as stage_cls
    else:
        raise ValueError(f"unknown stage {cfg.stage!r}")
    return stage_cls.build(cfg, accelerator, images_per_step=images_per_step, bf16=bf16)
