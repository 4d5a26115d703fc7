"""The `joint` stage: MAT -> luma composite -> colorizer, fine-tuned end to end with both discriminators.

The point of the stage (and of the project): the colorizer is trained on MAT's actual outputs, and the colorizer's
losses reach MAT through the composite. Only the lost pixels of the composite come from MAT, so color losses can
only change what MAT paints, never the known structure.

Step order: both discriminator steps (MAT's with lazy R1 in fp32, the colorizer's PatchGAN) -> one generator
step over MAT and the colorizer with both discriminators frozen and unwrapped -> EMA of both generators.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from accelerate import Accelerator
from torch import Tensor, nn

from restoration.inference import composite, inpaint_gray
from restoration.losses.color_gan import color_d_loss, color_g_losses
from restoration.losses.loss_config import LossConfig
from restoration.losses.mat_gan import build_perceptual, lazy_r1_weight, mat_d_loss, mat_g_losses, mat_inputs
from restoration.models.colorizer import build_colorizer
from restoration.models.discriminators import build_patch_discriminator
from restoration.models.mat import build_discriminator, build_generator, gray_to_mat_input, mat_output_to_luma
from restoration.models.mat_checkpoint import load_mat_weights
from restoration.precision import widen
from restoration.recipe import TrainConfig
from restoration.tasks.parts import StageParts, assemble, step_report


def mat_luma(mat_rgb: Tensor, color_to_mat: float) -> Tensor:
    """MAT's luma, with the gradient the colorizer's losses send back into MAT scaled by `color_to_mat`
    (1 = fully end to end, 0 = MAT learns only from its own losses)."""
    luma = mat_output_to_luma(mat_rgb)  # (B, 1, H, W)
    if color_to_mat != 1.0:
        luma = luma * color_to_mat + luma.detach() * (1.0 - color_to_mat)
    return luma


@dataclass
class JointStage:
    parts: StageParts
    loss: LossConfig
    perceptual: nn.Module | None

    @classmethod
    def build(cls, cfg: TrainConfig, accelerator: Accelerator, *, images_per_step: int, bf16: bool) -> JointStage:
        networks = {
            "mat_G": build_generator(cfg.mat),
            "mat_D": build_discriminator(cfg.mat),
            "color_G": build_colorizer(cfg.colorizer),
            "color_D": build_patch_discriminator(cfg.color_disc),
        }
        load_mat_weights(cfg.mat, networks["mat_G"], networks["mat_D"])
        parts = assemble(
            cfg, accelerator, networks, ema=("mat_G", "color_G"), images_per_step=images_per_step, bf16=bf16
        )
        return cls(parts, cfg.loss, build_perceptual(cfg.loss))

    def train_step(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        p, w = self.parts, self.loss
        mat_G, mat_D, color_G, color_D = (p.networks[k] for k in ("mat_G", "mat_D", "color_G", "color_D"))
        p.set_lr(step)
        real_gray3 = gray_to_mat_input(batch["gray"])  # (B, 3, H, W)
        known, gray_in = batch["known_mask"], batch["input"]
        masked, z, c = mat_inputs(gray_in, known, p.plain("mat_G").z_dim)
        trunc = w.mat_truncation

        # discriminator steps on detached fakes
        p.train("mat_D", "color_D")
        with torch.no_grad(), p.autocast():
            fake, fake_stg1 = mat_G(masked, known, z, c, truncation_psi=trunc, noise_mode="random", return_stg1=True)
            gray_full = composite(known, gray_in, mat_luma(widen(fake), 1.0))
            rgb = color_G(gray_full)
        r1_weight = lazy_r1_weight(step, w)
        with p.autocast(r1_weight == 0):  # R1 in fp32
            d_losses = mat_d_loss(
                p.for_r1("mat_D", r1_weight),
                real_gray3,
                widen(fake),
                widen(fake_stg1),
                known,
                c,
                r1_gamma=w.r1_gamma,
                r1_weight=r1_weight,
            )
        skipped = p.apply(d_losses["d_loss"], "mat_D")
        if w.color_adv > 0:
            with p.autocast():
                d_color = color_d_loss(color_D, batch["rgb"], widen(rgb), batch["gray"], gray_full, w.color_gan)
            skipped = p.apply(d_color["cd_loss"], "color_D") or skipped
            d_losses.update(d_color)

        # one generator step through MAT and the colorizer, discriminators frozen and unwrapped; then both EMAs
        p.freeze("mat_D", "color_D")
        with p.autocast():
            fake, fake_stg1 = mat_G(masked, known, z, c, truncation_psi=trunc, noise_mode="random", return_stg1=True)
            losses = mat_g_losses(
                p.plain("mat_D"), fake, fake_stg1, real_gray3, known, c, batch["gray"], w, self.perceptual
            )
            gray_full = composite(known, gray_in, mat_luma(widen(fake), w.joint_color_to_mat))
            losses.update(color_g_losses(p.plain("color_D"), color_G(gray_full), gray_full, batch["rgb"], w, known))
        skipped = p.apply(sum(losses.values()), "mat_G", "color_G") or skipped
        return step_report(d_losses, losses, skipped)

    @torch.no_grad()
    def predict(self, batch: dict[str, Tensor], generator: torch.Generator | None = None) -> dict[str, Tensor]:
        gray = inpaint_gray(self.parts.ema["mat_G"], batch["input"], batch["known_mask"], generator=generator)
        return {"gray": gray, "rgb": self.parts.ema["color_G"](gray)}
