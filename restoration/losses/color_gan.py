"""The colorizer's GAN maths as pure functions: the PatchGAN loss on (color, gray) pairs and the generator losses.

Generator losses: adversarial, chroma L1 (YCbCr), SSIM and the differentiable hue histogram (a proxy for the
contest's color term C). Used by the `colorize` and `joint` stages.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from restoration.losses.adversarial import d_hinge_loss, d_logistic_loss, g_hinge_loss, g_nonsaturating_loss
from restoration.losses.hue_histogram import hue_histogram_loss
from restoration.losses.loss_config import LossConfig
from restoration.losses.reconstruction import chroma_l1, hole_ssim_loss, ssim_loss
from restoration.precision import widen


def color_d_loss(
    D: nn.Module, real_rgb: Tensor, fake_rgb: Tensor, gray_real: Tensor, gray_fake: Tensor, kind: str
) -> dict[str, Tensor]:
    """One D forward over [real; fake] pairs (rgb, the gray it was colored from)."""
    B = real_rgb.shape[0]
    logits = D(torch.cat([real_rgb, fake_rgb.detach()]), torch.cat([gray_real, gray_fake.detach()]))
    loss_fn = d_hinge_loss if kind == "hinge" else d_logistic_loss
    return {"cd_loss": loss_fn(logits[:B], logits[B:]), "cd_real": logits[:B].mean().detach()}


def color_g_losses(
    D_plain: nn.Module,
    rgb: Tensor,
    gray_in: Tensor,
    gt_rgb: Tensor,
    weights: LossConfig,
    known: Tensor | None = None,
) -> dict[str, Tensor]:
    """Weighted generator-side colorizer losses; `gray_in` is what the colorizer saw (in `joint` gradients flow
    through it into MAT); `D_plain` is the frozen, unwrapped discriminator; `known` (1 = known) places the hole
    SSIM (M's proxy) when `color_hole_ssim` is on."""
    losses: dict[str, Tensor] = {}
    if weights.color_adv > 0:
        logits = D_plain(rgb, gray_in)
        adv = g_hinge_loss(logits) if weights.color_gan == "hinge" else g_nonsaturating_loss(logits)
        losses["color_adv"] = weights.color_adv * adv
    if weights.chroma_l1 > 0:
        losses["chroma_l1"] = weights.chroma_l1 * chroma_l1(widen(rgb), gt_rgb)
    if weights.ssim > 0:
        losses["ssim"] = weights.ssim * ssim_loss(widen(rgb), gt_rgb)
    if weights.hue_hist > 0:
        losses["hue_hist"] = weights.hue_hist * hue_histogram_loss(widen(rgb), gt_rgb)
    if weights.color_hole_ssim > 0:
        if known is None:
            raise ValueError("loss.color_hole_ssim needs the batch's known mask")
        losses["color_hole_ssim"] = weights.color_hole_ssim * hole_ssim_loss(widen(rgb), gt_rgb, 1.0 - known)
    return losses
