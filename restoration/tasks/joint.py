"""The `joint` stage: MAT -> luma composite -> colorizer, fine-tuned end to end with both discriminators.

The point of the stage (and of the project): the colorizer is trained on MAT's actual outputs, and the colorizer's
losses reach MAT through the composite. Only the lost pixels of the composite come from MAT, so color losses can
only change what MAT paints, never the known structure.

Step order: both discriminator steps (MAT's with lazy R1 in fp32, the colorizer's PatchGAN) -> one generator
step over MAT and the colorizer with both discriminators frozen and unwrapped -> EMA of both generators.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from accelerate import Accelerator
from torch import Tensor, nn

from restoration.inference import composite
from restoration.losses.color_gan import color_d_loss, color_g_terms, rebalanced_ce
from restoration.losses.loss_config import LossConfig, active, weigh
from restoration.losses.mat_gan import build_perceptual, lazy_r1_weight, mat_d_loss, mat_g_terms
from restoration.models.mat import gray_to_mat_input, mat_inputs, mat_output_to_luma
from restoration.models.mat_checkpoint import load_mat_weights
from restoration.precision import widen
from restoration.recipe import STAGE_NETWORKS, TrainConfig
from restoration.tasks.parts import StageParts, assemble, step_report
from restoration.weights import build_networks


def mat_luma(mat_rgb: Tensor, color_to_mat: float) -> Tensor:
    """MAT's luma, with the gradient the colorizer's losses send back into MAT scaled by `color_to_mat`
    (1 = fully end to end, 0 = MAT learns only from its own losses)."""
    luma = mat_output_to_luma(mat_rgb)  # (B, 1, H, W)
    if color_to_mat != 1.0:
        luma = luma * color_to_mat + luma.detach() * (1.0 - color_to_mat)
    return luma


@dataclass
class JointStage:
    scores_masks: ClassVar[bool] = False
    logs_model: ClassVar[bool] = True
    parts: StageParts
    loss: LossConfig
    perceptual: nn.Module | None

    @classmethod
    def build(cls, cfg: TrainConfig, accelerator: Accelerator, *, images_per_step: int, bf16: bool) -> JointStage:
        networks = build_networks(cfg, STAGE_NETWORKS["joint"])
        load_mat_weights(cfg.mat, networks["mat_G"], networks["mat_D"])
        parts = assemble(
            cfg, accelerator, networks, ema=("mat_G", "color_G"), images_per_step=images_per_step, bf16=bf16
        )
        return cls(parts, cfg.loss, build_perceptual(cfg.loss.mat_perceptual, cfg.loss.perceptual_weights))

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
        r1_weight = lazy_r1_weight(step, w.r1_gamma, w.r1_every)
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
            mat_weights, color_weights = w.mat_weights(), w.color_weights()
            mat_terms = mat_g_terms(
                p.plain("mat_D"), fake, fake_stg1, real_gray3, known, c, batch["gray"], terms=active(mat_weights),
                perceptual=self.perceptual,
            )  # fmt: skip
            gray_full = composite(known, gray_in, mat_luma(widen(fake), w.joint_color_to_mat))
            rgb, logits = color_G(gray_full, with_logits=True)
            color_terms = color_g_terms(
                p.plain("color_D"), rgb, gray_full, batch["rgb"], terms=active(color_weights), gan=w.color_gan,
                known=known,
            )  # fmt: skip
            if "chroma_ce" in active(color_weights):
                color_terms["chroma_ce"] = rebalanced_ce(logits, *p.plain("color_G").bins_target(batch["rgb"]))
            losses = weigh(mat_terms, mat_weights) | weigh(color_terms, color_weights)
        skipped = p.apply(sum(losses.values()), "mat_G", "color_G") or skipped
        return step_report(d_losses, losses, skipped)
