"""The `detector` stage: a small U-Net that predicts `known_mask` logits from the masked gray input.

Only needed for inputs that break the contest's fill rule (the exact flat-region detector handles the rest); the
loss is BCE + Dice on the known mask, the eval metric the mask IoU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch import Tensor

from restoration.losses.dice import dice_loss
from restoration.losses.loss_config import LossConfig
from restoration.precision import widen
from restoration.recipe import STAGE_NETWORKS, TrainConfig
from restoration.tasks.parts import StageParts, assemble
from restoration.weights import build_networks


@dataclass
class DetectionStage:
    """Validation adds the mask IoU of the learned detector (`scores_masks`); its export alone restores nothing."""

    scores_masks: ClassVar[bool] = True
    logs_model: ClassVar[bool] = False
    parts: StageParts
    loss: LossConfig

    @classmethod
    def build(cls, cfg: TrainConfig, accelerator: Accelerator, *, images_per_step: int, bf16: bool) -> DetectionStage:
        networks = build_networks(cfg, STAGE_NETWORKS["detector"])
        parts = assemble(cfg, accelerator, networks, ema=("detector",), images_per_step=images_per_step, bf16=bf16)
        return cls(parts, cfg.loss)

    def train_step(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        p = self.parts
        p.set_lr(step)
        with p.autocast():
            logits = widen(p.networks["detector"](batch["input"]))  # (B, 1, H, W)
        bce = F.binary_cross_entropy_with_logits(logits, batch["known_mask"])
        dice = dice_loss(logits, batch["known_mask"])
        loss = bce + self.loss.detector_dice * dice
        skipped = p.apply(loss, "detector")
        scalars = {"bce": bce, "dice": dice, "loss": loss}
        return {k: v.detach() for k, v in scalars.items()} | {"skipped": torch.tensor(float(skipped))}
