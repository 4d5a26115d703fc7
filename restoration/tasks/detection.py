"""The `detector` stage: a small U-Net that predicts `known_mask` logits from the masked gray input.

Only needed for inputs that break the contest's fill rule (the exact flat-region detector handles the rest); the
loss is BCE + Dice on the known mask, the eval metric the mask IoU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch import Tensor

from restoration.losses.dice import dice_loss
from restoration.losses.loss_config import LossConfig
from restoration.models.detector import build_detector
from restoration.precision import widen
from restoration.recipe import TrainConfig
from restoration.tasks.parts import StageParts, assemble


@dataclass
class DetectionStage:
    parts: StageParts
    loss: LossConfig

    @classmethod
    def build(cls, cfg: TrainConfig, accelerator: Accelerator, *, images_per_step: int, bf16: bool) -> DetectionStage:
        networks = {"detector": build_detector(cfg.detector)}
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

    @torch.no_grad()
    def predict(self, batch: dict[str, Tensor], generator: torch.Generator | None = None) -> dict[str, Tensor]:
        logits = self.parts.ema["detector"](batch["input"])
        gray = batch["input"]
        return {"gray": gray, "rgb": gray.expand(-1, 3, -1, -1), "known_mask": (logits > 0).float()}
