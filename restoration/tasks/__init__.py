"""One object per training stage, one file named after it: which networks it trains and its `train_step`.

The loop in `restoration/trainer.py` only knows the `Task` protocol: what a stage needs beyond training is declared as
attributes (`scores_masks`: validation adds the detector's mask IoU; `logs_model`: its export is a whole pipeline,
logged as an MLflow model), never read from its name. Restoring images is not a stage's business: validation runs
`parts.inference_networks()` through the same `Pipeline` as prediction. The GAN maths are pure functions in
`restoration/losses/`; the parts every stage shares (optimizers, EMA, schedule, export) are assembled once in
`tasks/parts.py`. No inheritance, no registry: `build_task` is an explicit `if`.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from accelerate import Accelerator
from torch import Tensor

from restoration.recipe import TrainConfig
from restoration.tasks.parts import StageParts


class Task(Protocol):
    scores_masks: ClassVar[bool]
    logs_model: ClassVar[bool]
    parts: StageParts

    def train_step(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        """One micro-batch of every network's update; returns detached scalars (and `skipped`)."""


def build_task(cfg: TrainConfig, accelerator: Accelerator, *, images_per_step: int, bf16: bool) -> Task:
    """The stage of `cfg.stage`, with unprepared networks and their optimizers."""
    if cfg.stage == "joint":
        from restoration.tasks.joint import JointStage as stage_cls
    elif cfg.stage == "inpaint":
        from restoration.tasks.inpaint import InpaintStage as stage_cls
    elif cfg.stage == "colorize":
        from restoration.tasks.colorize import ColorizeStage as stage_cls
    elif cfg.stage == "detector":
        from restoration.tasks.detector import DetectionStage as stage_cls
    elif cfg.stage == "gan_baseline":
        from restoration.tasks.gan_baseline import GanBaselineStage as stage_cls
    else:
        raise ValueError(f"unknown stage {cfg.stage!r}")
    return stage_cls.build(cfg, accelerator, images_per_step=images_per_step, bf16=bf16)
