"""MAT's GAN maths as pure functions: its inputs, the two-headed discriminator loss with lazy R1, the generator losses.

As in MAT / StyleGAN2-ADA: non-saturating logistic loss on both discriminator heads (the final image and the
first-stage image), the R1 penalty on real images every `r1_every` steps scaled by that interval, plus our optional
hole L1 on luma and a perceptual term. Used by the `inpaint` and `joint` stages.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from restoration.losses.adversarial import d_logistic_loss, g_nonsaturating_loss
from restoration.losses.loss_config import LossConfig
from restoration.losses.reconstruction import hole_ssim_loss, masked_l1, ssim_loss
from restoration.models.mat import mat_output_to_luma
from restoration.precision import widen


def lazy_r1_weight(step: int, weights: LossConfig) -> float:
    """Lazy R1: the penalty is taken every `r1_every` steps, scaled by that interval (0 on the other steps)."""
    return float(weights.r1_every) if weights.r1_gamma > 0 and step % weights.r1_every == 0 else 0.0


def mat_d_loss(
    D: nn.Module,
    real: Tensor,
    fake: Tensor,
    fake_stg1: Tensor,
    known: Tensor,
    c: Tensor,
    *,
    r1_gamma: float,
    r1_weight: float,
) -> dict[str, Tensor]:
    """Logistic loss on both heads for real vs fake, one D forward over the concatenated batch.

    With `r1_weight > 0` (lazy R1 step) the real half is differentiated w.r.t. its inputs and
    `r1_weight * gamma / 2 * ||grad||^2` is added (the caller runs this step in fp32).
    """
    B = real.shape[0]
    real_main = real.detach().requires_grad_(r1_weight > 0)
    real_stg1 = real.detach().requires_grad_(r1_weight > 0)
    imgs = torch.cat([real_main, fake.detach()])  # (2B, 3, H, W)
    imgs_stg1 = torch.cat([real_stg1, fake_stg1.detach()])
    logits, logits_stg1 = D(imgs, torch.cat([known, known]), imgs_stg1, torch.cat([c, c]))
    loss_main = d_logistic_loss(logits[:B], logits[B:])
    loss_stg1 = d_logistic_loss(logits_stg1[:B], logits_stg1[B:])
    out = {"d_loss": loss_main + loss_stg1, "d_real": logits[:B].mean().detach(), "d_fake": logits[B:].mean().detach()}
    if r1_weight > 0:
        grads = torch.autograd.grad(
            [logits[:B].sum(), logits_stg1[:B].sum()], [real_main, real_stg1], create_graph=True
        )
        penalty = sum(widen(g).square().sum(dim=(1, 2, 3)) for g in grads).mean()
        out["d_loss"] = out["d_loss"] + penalty * (r1_gamma / 2) * r1_weight
        out["r1"] = penalty.detach()
    return out


def mat_g_losses(
    D_plain: nn.Module,
    fake: Tensor,
    fake_stg1: Tensor,
    real: Tensor,
    known: Tensor,
    c: Tensor,
    gray: Tensor,
    weights: LossConfig,
    perceptual: nn.Module | None,
) -> dict[str, Tensor]:
    """Weighted generator-side MAT losses: adversarial (both heads of the frozen, unwrapped `D_plain`), L1 of the
    lost pixels' luma against the true `gray`, the perceptual term when a perceptual network is given, and the
    score-aligned SSIMs of the composite luma (hole: M, whole image: S) when their weights are on."""
    logits, logits_stg1 = D_plain(fake, known, fake_stg1, c)
    losses = {"mat_adv": weights.mat_adv * (g_nonsaturating_loss(logits) + g_nonsaturating_loss(logits_stg1))}
    if weights.mat_l1_hole > 0:
        luma = mat_output_to_luma(fake)
        losses["mat_l1"] = weights.mat_l1_hole * masked_l1(widen(luma), gray, 1.0 - known)
    if weights.mat_hole_ssim > 0 or weights.mat_ssim > 0:  # on the composite, the gray the pipeline passes on
        gray_full = known * gray + (1.0 - known) * widen(mat_output_to_luma(fake))
        if weights.mat_hole_ssim > 0:
            losses["mat_hole_ssim"] = weights.mat_hole_ssim * hole_ssim_loss(gray_full, gray, 1.0 - known)
        if weights.mat_ssim > 0:
            losses["mat_ssim"] = weights.mat_ssim * ssim_loss(gray_full, gray)
    if perceptual is not None and weights.mat_perceptual > 0:
        losses["mat_perceptual"] = weights.mat_perceptual * perceptual(widen(fake), real)
    return losses


def build_perceptual(weights: LossConfig) -> nn.Module | None:
    """The frozen perceptual network, only when its loss is switched on (it needs a local weights file)."""
    if weights.mat_perceptual <= 0:
        return None
    from restoration.losses.perceptual import build_perceptual_loss

    return build_perceptual_loss(weights.perceptual_weights)
