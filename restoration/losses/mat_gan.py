"""MAT's GAN maths as pure functions: its inputs, the two-headed discriminator loss with lazy R1, the generator losses.

As in MAT / StyleGAN2-ADA: non-saturating logistic loss on both discriminator heads (the final image and the
first-stage image), the R1 penalty on real images every `r1_every` steps scaled by that interval, plus our optional
hole L1 on luma and a perceptual term. Used by the `inpaint` and `joint` stages.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import torch
from torch import Tensor, nn

from restoration.losses.adversarial import d_logistic_loss, g_nonsaturating_loss
from restoration.losses.reconstruction import hole_ssim_loss, masked_l1, ssim_loss
from restoration.models.mat import mat_output_to_luma
from restoration.precision import widen


def lazy_r1_weight(step: int, r1_gamma: float, r1_every: int) -> float:
    """Lazy R1: the penalty is taken every `r1_every` steps, scaled by that interval (0 on the other steps)."""
    return float(r1_every) if r1_gamma > 0 and step % r1_every == 0 else 0.0


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


def mat_g_terms(
    D_plain: nn.Module,
    fake: Tensor,
    fake_stg1: Tensor,
    real: Tensor,
    known: Tensor,
    c: Tensor,
    gray: Tensor,
    *,
    terms: Collection[str],
    perceptual: nn.Module | None = None,
) -> dict[str, Tensor]:
    """Unweighted generator-side MAT terms (the stage weighs them): `mat_adv` always (both heads of the frozen,
    unwrapped `D_plain`), and those named in `terms`: `mat_l1` (L1 of the lost pixels' luma against the true
    `gray`), `mat_hole_ssim` / `mat_ssim` (SSIM losses of the composite luma over the hole, M's proxy, and the whole
    image, S's) and `mat_perceptual` (needs `perceptual`)."""
    logits, logits_stg1 = D_plain(fake, known, fake_stg1, c)
    out = {"mat_adv": g_nonsaturating_loss(logits) + g_nonsaturating_loss(logits_stg1)}
    if "mat_l1" in terms:
        out["mat_l1"] = masked_l1(widen(mat_output_to_luma(fake)), gray, 1.0 - known)
    if "mat_hole_ssim" in terms or "mat_ssim" in terms:  # on the composite, the gray the pipeline passes on
        gray_full = known * gray + (1.0 - known) * widen(mat_output_to_luma(fake))
        if "mat_hole_ssim" in terms:
            out["mat_hole_ssim"] = hole_ssim_loss(gray_full, gray, 1.0 - known)
        if "mat_ssim" in terms:
            out["mat_ssim"] = ssim_loss(gray_full, gray)
    if perceptual is not None and "mat_perceptual" in terms:
        out["mat_perceptual"] = perceptual(widen(fake), real)
    return out


def build_perceptual(weight: float, weights_file: Path | None) -> nn.Module | None:
    """The frozen perceptual network, only when its loss is switched on (it needs a local weights file)."""
    if weight <= 0:
        return None
    from restoration.losses.perceptual import build_perceptual_loss

    return build_perceptual_loss(weights_file)
