"""The colorizer's GAN maths as pure functions: the PatchGAN loss on (color, gray) pairs and the generator losses.

Generator losses: adversarial, chroma L1 (YCbCr), SSIM and the differentiable hue histogram (a proxy for the
contest's color term C). Used by the `colorize` and `joint` stages.
"""

from __future__ import annotations

from collections.abc import Collection

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restoration.losses.adversarial import d_hinge_loss, d_logistic_loss, g_hinge_loss, g_nonsaturating_loss
from restoration.losses.hue_histogram import hue_histogram_loss
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


def rebalanced_ce(logits: Tensor, target: Tensor, prior: Tensor, mix: float = 0.5) -> Tensor:
    """Cross-entropy of the chroma bins' logits (B, Q, H, W) against the true bins (B, H, W), each pixel weighted by
    the inverse of its bin's frequency in the training photos (`prior`, mixed `mix` with the uniform and normalised
    so that the average weight over the prior is 1): Zhang et al.'s class rebalancing, without which the rare,
    saturated colours lose to the common greys and browns."""
    weight = 1.0 / ((1.0 - mix) * prior + mix / prior.numel())
    weight = weight / (prior * weight).sum()
    return (F.cross_entropy(widen(logits), target, reduction="none") * weight[target]).mean()


def color_g_terms(
    D_plain: nn.Module | None,
    rgb: Tensor,
    gray_in: Tensor,
    gt_rgb: Tensor,
    *,
    terms: Collection[str],
    gan: str = "logistic",
    known: Tensor | None = None,
) -> dict[str, Tensor]:
    """Unweighted generator-side colorizer terms named in `terms` (the stage weighs them): `color_adv` (the frozen,
    unwrapped `D_plain`; `gan` logistic or hinge), `chroma_l1`, `ssim`, `hue_hist` and `color_hole_ssim` (M's proxy,
    needs `known`, 1 = known). `gray_in` is what the colorizer saw (in `joint` gradients flow through it into MAT)."""
    out: dict[str, Tensor] = {}
    if "color_adv" in terms:
        logits = D_plain(rgb, gray_in)
        out["color_adv"] = g_hinge_loss(logits) if gan == "hinge" else g_nonsaturating_loss(logits)
    if "chroma_l1" in terms:
        out["chroma_l1"] = chroma_l1(widen(rgb), gt_rgb)
    if "ssim" in terms:
        out["ssim"] = ssim_loss(widen(rgb), gt_rgb)
    if "hue_hist" in terms:
        out["hue_hist"] = hue_histogram_loss(widen(rgb), gt_rgb)
    if "color_hole_ssim" in terms:
        if known is None:
            raise ValueError("loss.color_hole_ssim needs the batch's known mask")
        out["color_hole_ssim"] = hole_ssim_loss(widen(rgb), gt_rgb, 1.0 - known)
    return out
