"""The `inpaint` stage: MAT generator + two-headed discriminator on gray images, the MAT recipe.

Step order (StyleGAN2-ADA / MAT): discriminator step (non-saturating logistic on both heads, with the lazy R1
penalty folded into the same backward every `r1_every` steps, computed in fp32) -> generator step with the
discriminator frozen and called unwrapped -> EMA.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from accelerate import Accelerator
from torch import Tensor, nn

from restoration.inference import inpaint_gray
from restoration.losses.loss_config import LossConfig
from restoration.losses.mat_gan import build_perceptual, lazy_r1_weight, mat_d_loss, mat_g_losses, mat_inputs
from restoration.models.mat import build_discriminator, build_generator, gray_to_mat_input
from restoration.models.mat_checkpoint import load_mat_weights
from restoration.precision import widen
from restoration.recipe import TrainConfig
from restoration.tasks.parts import StageParts, assemble, step_report


@dataclass
class InpaintStage:
    parts: StageParts
    loss: LossConfig
    perceptual: nn.Module | None

    @classmethod
    def build(cls, cfg: TrainConfig, accelerator: Accelerator, *, images_per_step: int, bf16: bool) -> InpaintStage:
        G, D = build_generator(cfg.mat), build_discriminator(cfg.mat)
        load_mat_weights(cfg.mat, G, D)
        parts = assemble(
            cfg, accelerator, {"mat_G": G, "mat_D": D}, ema=("mat_G",), images_per_step=images_per_step, bf16=bf16
        )
        return cls(parts, cfg.loss, build_perceptual(cfg.loss))

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
        r1_weight = lazy_r1_weight(step, w)
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
            g_losses = mat_g_losses(
                p.plain("mat_D"), fake, fake_stg1, real, known, c, batch["gray"], w, self.perceptual
            )
        g_skipped = p.apply(sum(g_losses.values()), "mat_G")
        return step_report(d_out, g_losses, d_skipped or g_skipped)

    @torch.no_grad()
    def predict(self, batch: dict[str, Tensor], generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """EMA inpainting: the composite gray (B, 1, H, W) and, for the score, that gray as RGB."""
        gray = inpaint_gray(self.parts.ema["mat_G"], batch["input"], batch["known_mask"], generator=generator)
        return {"gray": gray, "rgb": gray.expand(-1, 3, -1, -1)}
