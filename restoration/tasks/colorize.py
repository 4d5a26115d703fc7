"""The `colorize` stage: a U-Net colorizer (chroma only) + a PatchGAN conditioned on gray.

Trained on the exact gray of the ground truth (no holes): the colorizer learns color, the inpainter is not
involved. Step order: PatchGAN step (when `loss.color_adv` > 0) -> colorizer step with the PatchGAN frozen -> EMA.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from accelerate import Accelerator
from torch import Tensor

from restoration.losses.color_gan import color_d_loss, color_g_terms, rebalanced_ce
from restoration.losses.loss_config import LossConfig, active, weigh
from restoration.precision import widen
from restoration.recipe import STAGE_NETWORKS, TrainConfig
from restoration.tasks.parts import StageParts, assemble, step_report
from restoration.weights import build_networks


@dataclass
class ColorizeStage:
    """Validation colorizes the masked input as it is, or over the classical fill (this stage never learned to
    inpaint): the score shows what coloring alone buys; use `joint` for the full pipeline."""

    scores_masks: ClassVar[bool] = False
    logs_model: ClassVar[bool] = False
    parts: StageParts
    loss: LossConfig

    @classmethod
    def build(cls, cfg: TrainConfig, accelerator: Accelerator, *, images_per_step: int, bf16: bool) -> ColorizeStage:
        networks = build_networks(cfg, STAGE_NETWORKS["colorize"])
        parts = assemble(cfg, accelerator, networks, ema=("color_G",), images_per_step=images_per_step, bf16=bf16)
        return cls(parts, cfg.loss)

    def train_step(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        p, w = self.parts, self.loss
        G, D = p.networks["color_G"], p.networks["color_D"]
        p.set_lr(step)
        gray, gt = batch["gray"], batch["rgb"]

        d_skipped = False
        d_out: dict[str, Tensor] = {}
        if w.color_adv > 0:
            p.train("color_D")
            with torch.no_grad(), p.autocast():
                fake = G(gray)
            with p.autocast():
                d_out = color_d_loss(D, gt, widen(fake), gray, gray, w.color_gan)
            d_skipped = p.apply(d_out["cd_loss"], "color_D")
            p.freeze("color_D")

        with p.autocast():
            weights = w.color_weights()
            rgb, logits = G(gray, with_logits=True)
            terms = color_g_terms(
                p.plain("color_D"), rgb, gray, gt, terms=active(weights), gan=w.color_gan, known=batch.get("known_mask")
            )
            if "chroma_ce" in active(weights):
                terms["chroma_ce"] = rebalanced_ce(logits, *p.plain("color_G").bins_target(gt))
            g_losses = weigh(terms, weights)
        g_skipped = p.apply(sum(g_losses.values()), "color_G")
        return step_report(d_out, g_losses, d_skipped or g_skipped)
