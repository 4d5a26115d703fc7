"""The `gan_baseline` stage: the original notebook's model, one U-Net doing inpainting and coloring at once.

U-Net 1 -> 3 on the masked gray input + PatchGAN, BCE + 100 * L1 (pix2pix). It exists to be beaten: the quality
study trains it at the same compute as the two-stage and joint pipelines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from accelerate import Accelerator
from torch import Tensor

from restoration.losses.adversarial import d_logistic_loss, g_nonsaturating_loss
from restoration.losses.loss_config import LossConfig
from restoration.losses.reconstruction import l1
from restoration.precision import widen
from restoration.recipe import STAGE_NETWORKS, TrainConfig
from restoration.tasks.parts import StageParts, assemble
from restoration.weights import build_networks


@dataclass
class GanBaselineStage:
    scores_masks: ClassVar[bool] = False
    logs_model: ClassVar[bool] = True
    parts: StageParts
    loss: LossConfig

    @classmethod
    def build(cls, cfg: TrainConfig, accelerator: Accelerator, *, images_per_step: int, bf16: bool) -> GanBaselineStage:
        networks = build_networks(cfg, STAGE_NETWORKS["gan_baseline"])
        parts = assemble(cfg, accelerator, networks, ema=("baseline_G",), images_per_step=images_per_step, bf16=bf16)
        return cls(parts, cfg.loss)

    def train_step(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        p = self.parts
        G, D = p.networks["baseline_G"], p.networks["baseline_D"]
        p.set_lr(step)
        masked, gt = batch["input"], batch["rgb"]
        B = gt.shape[0]

        p.train("baseline_D")
        with torch.no_grad(), p.autocast():
            fake = G(masked)
        with p.autocast():
            logits = D(torch.cat([gt, widen(fake)]), torch.cat([masked, masked]))
            d_loss = d_logistic_loss(logits[:B], logits[B:])  # = BCE with logits, real 1 / fake 0
        d_skipped = p.apply(d_loss, "baseline_D")

        p.freeze("baseline_D")
        with p.autocast():
            fake = G(masked)
            adv = g_nonsaturating_loss(p.plain("baseline_D")(fake, masked))
        rec = l1(widen(fake), gt)
        g_loss = adv + self.loss.baseline_l1 * rec
        g_skipped = p.apply(g_loss, "baseline_G")
        return {
            "d_loss": d_loss.detach(),
            "g_adv": adv.detach(),
            "g_l1": rec.detach(),
            "g_loss": g_loss.detach(),
            "skipped": torch.tensor(float(d_skipped or g_skipped)),
        }
