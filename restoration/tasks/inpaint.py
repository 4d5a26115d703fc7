"""The `inpaint` stage: MAT generator + two-headed discriminator on gray images, the MAT recipe.

Step order (StyleGAN2-ADA / MAT): discriminator step (non-saturating logistic on both heads, with the lazy R1
penalty folded into the same backward every `r1_every` steps, computed in fp32) -> generator step with the
discriminator frozen and called unwrapped -> EMA.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from accelerate import Accelerator
from torch import Tensor, nn

from restoration.losses.loss_config import LossConfig, active, weigh
from restoration.losses.mat_gan import build_perceptual, lazy_r1_weight, mat_d_loss, mat_g_terms
from restoration.models.mat import gray_to_mat_input, mat_inputs
from restoration.models.mat_checkpoint import load_mat_weights
from restoration.precision import widen
from restoration.recipe import STAGE_NETWORKS, TrainConfig
from restoration.tasks.parts import StageParts, assemble, step_report
from restoration.weights import build_networks


@dataclass
class InpaintStage:
    scores_masks: ClassVar[bool] = False
    logs_model: ClassVar[bool] = False
    parts: StageParts
    loss: LossConfig
    perceptual: nn.Module | None

    @classmethod
    def build(cls, cfg: TrainConfig, accelerator: Accelerator, *, images_per_step: int, bf16: bool) -> InpaintStage:
        networks = build_networks(cfg, STAGE_NETWORKS["inpaint"])
        load_mat_weights(cfg.mat, networks["mat_G"], networks["mat_D"])
        parts = assemble(cfg, accelerator, networks, ema=("mat_G",), images_per_step=images_per_step, bf16=bf16)
        return cls(parts, cfg.loss, build_perceptual(cfg.loss.mat_perceptual, cfg.loss.perceptual_weights))

    def train_step(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        p, w = self.parts, self.loss
        G = p.networks["mat_G"]
        p.set_lr(step)
        real = gray_to_mat_input(batch["gray"])  # (B, 3, H, W)
        known = batch["known_mask"]
        masked, z, c = mat_inputs(batch["input"], known, p.plain("mat_G").z_dim)
        trunc = w.mat_truncation

        # discriminator step (+ lazy R1, in fp32)
        p.train("mat_D")
        with torch.no_grad(), p.autocast():
            fake, fake_stg1 = G(masked, known, z, c, truncation_psi=trunc, noise_mode="random", return_stg1=True)
        r1_weight = lazy_r1_weight(step, w.r1_gamma, w.r1_every)
        with p.autocast(r1_weight == 0):
            d_out = mat_d_loss(
                p.for_r1("mat_D", r1_weight),
                real,
                widen(fake),
                widen(fake_stg1),
                known,
                c,
                r1_gamma=w.r1_gamma,
                r1_weight=r1_weight,
            )
        d_skipped = p.apply(d_out["d_loss"], "mat_D")

        # generator step, discriminator frozen and unwrapped; then EMA
        p.freeze("mat_D")
        with p.autocast():
            fake, fake_stg1 = G(masked, known, z, c, truncation_psi=trunc, noise_mode="random", return_stg1=True)
            weights = w.mat_weights()
            terms = mat_g_terms(
                p.plain("mat_D"), fake, fake_stg1, real, known, c, batch["gray"], terms=active(weights),
                perceptual=self.perceptual,
            )  # fmt: skip
            g_losses = weigh(terms, weights)
        g_skipped = p.apply(sum(g_losses.values()), "mat_G")
        return step_report(d_out, g_losses, d_skipped or g_skipped)
