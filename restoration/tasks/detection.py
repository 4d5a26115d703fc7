"""The `detector` stage: a small U-Net that predicts `known_mask` logits from the masked gray input.

Only needed for inputs that break the contest's fill rule (the exact flat-region detector handles the rest); the
loss is BCE + Dice on the known mask, the eval metric the mask IoU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch import Tensor, nn

from restoration.models.detector import build_detector
from restoration.tasks.gan_mechanics import ema_decay_from_half_life, ema_update, make_ema, optimizer_step
from restoration.tasks.inpainting import autocast, pipeline_meta
from restoration.tasks.schedule import apply_lr, lr_factor, make_adam
from restoration.tasks.weights_io import export_weights, exportable_networks, load_init_weights

if TYPE_CHECKING:
    from restoration.train import TrainConfig


def dice_loss(logits: Tensor, target: Tensor, eps: float = 1.0) -> Tensor:
    """1 - Dice on the lost region (the rare class), per image then averaged."""
    hole_prob = 1.0 - torch.sigmoid(logits)
    hole = 1.0 - target
    inter = (hole_prob * hole).sum(dim=(1, 2, 3))
    union = hole_prob.sum(dim=(1, 2, 3)) + hole.sum(dim=(1, 2, 3))
    return (1.0 - (2 * inter + eps) / (union + eps)).mean()


@dataclass
class DetectionTask:
    cfg: TrainConfig
    accelerator: Accelerator
    networks: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    ema: dict[str, nn.Module]
    ema_decay: float
    bf16: bool

    @classmethod
    def build(cls, cfg: TrainConfig, accelerator: Accelerator, *, images_per_step: int, bf16: bool) -> DetectionTask:
        net = build_detector(cfg.detector)
        load_init_weights({"detector": net}, cfg.init.from_weights, strict=cfg.init.strict)
        return cls(
            cfg=cfg,
            accelerator=accelerator,
            networks={"detector": net},
            optimizers={"detector": make_adam(net.parameters(), cfg.optim.lr, cfg.optim)},
            ema={"detector": make_ema(net)},
            ema_decay=ema_decay_from_half_life(
                cfg.optim.ema_half_life_images, images_per_step * accelerator.num_processes
            ),
            bf16=bf16,
        )

    def current_lr(self, step: int) -> float:
        return self.cfg.optim.lr * lr_factor(step, self.cfg.run.max_steps, self.cfg.optim)

    def train_step(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        acc, net, opt = self.accelerator, self.networks["detector"], self.optimizers["detector"]
        apply_lr(opt, lr_factor(step, self.cfg.run.max_steps, self.cfg.optim))
        with autocast(acc, self.bf16):
            logits = net(batch["input"]).float()  # (B, 1, H, W)
        bce = F.binary_cross_entropy_with_logits(logits, batch["known_mask"])
        dice = dice_loss(logits, batch["known_mask"])
        loss = bce + self.cfg.loss.detector_dice * dice
        acc.backward(loss)
        _, skipped = optimizer_step(acc, opt, net.parameters(), self.cfg.optim.grad_clip)
        if acc.sync_gradients and not skipped:
            ema_update(self.ema["detector"], acc.unwrap_model(net), self.ema_decay)
        return {
            "bce": bce.detach(),
            "dice": dice.detach(),
            "loss": loss.detach(),
            "skipped": torch.tensor(float(skipped)),
        }

    @torch.no_grad()
    def predict(self, batch: dict[str, Tensor], generator: torch.Generator | None = None) -> dict[str, Tensor]:
        logits = self.ema["detector"](batch["input"])
        gray = batch["input"]
        return {"gray": gray, "rgb": gray.expand(-1, 3, -1, -1), "known_mask": (logits > 0).float()}

    def export(self, out_dir: Path, cfg: TrainConfig) -> Path:
        networks = exportable_networks(self.ema, self.networks, self.accelerator.unwrap_model)
        return export_weights(networks, out_dir, pipeline_meta(cfg))
