"""One task object per training stage: it owns the stage's networks, losses, optimizers, EMA copies and steps.

The loop in `restoration/train.py` only knows this protocol; the GAN logic stays in each stage's module, in plain
sight (no inheritance, no registry: `build_task` is an explicit `if`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import torch
from accelerate import Accelerator
from torch import Tensor, nn

if TYPE_CHECKING:
    from restoration.train import TrainConfig

Stage = Literal["detector", "inpaint", "colorize", "joint", "gan_baseline"]


class Task(Protocol):
    networks: dict[str, nn.Module]  # trained networks, replaced by their prepared (DDP) versions
    optimizers: dict[str, torch.optim.Optimizer]
    ema: dict[str, nn.Module]  # EMA copies: evaluated, checkpointed and exported

    def train_step(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        """One micro-batch of every network's update; returns detached scalars (and `skipped`)."""

    def predict(self, batch: dict[str, Tensor], generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """EMA outputs: `gray` (B, 1, H, W) and `rgb` (B, 3, H, W) in [-1, 1]; `known_mask` for the detector."""

    def current_lr(self, step: int) -> float: ...

    def export(self, out_dir: Path, cfg: TrainConfig) -> Path: ...


def build_task(cfg: TrainConfig, accelerator: Accelerator, *, images_per_step: int, bf16: bool) -> Task:
    """The task object of `cfg.stage`, with unprepared networks and their optimizers."""
    if cfg.stage == "joint":
        from restoration.tasks.joint import JointTask as task_cls
    elif cfg.stage == "inpaint":
        from restoration.tasks.inpainting import InpaintTask as task_cls
    elif cfg.stage == "colorize":
        from restoration.tasks.colorization import ColorizeTask as task_cls
    elif cfg.stage == "detector":
        from restoration.tasks.detection import DetectionTask as task_cls
    elif cfg.stage == "gan_baseline":
        from restoration.tasks.gan import GanBaselineTask as task_cls
    else:
        raise ValueError(f"unknown stage {cfg.stage!r}")
    return task_cls.build(cfg, accelerator, images_per_step=images_per_step, bf16=bf16)
