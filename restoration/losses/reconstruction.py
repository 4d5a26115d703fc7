"""Pixel losses on images in [-1, 1]: L1, hole-normalised L1, chroma L1 (YCbCr), and SSIM (pytorch-msssim)."""

from __future__ import annotations

from pytorch_msssim import ssim
from torch import Tensor

from restoration.data.color import rgb_to_ycbcr, signed_to_unit


def l1(pred: Tensor, target: Tensor) -> Tensor:
    return (pred - target).abs().mean()


def masked_l1(pred: Tensor, target: Tensor, weight_mask: Tensor, eps: float = 1.0) -> Tensor:
    """L1 averaged over the pixels where `weight_mask` is 1 (e.g. the hole), per image, then over the batch.

    Normalising per image by its own hole area (not by the batch's) keeps small holes from being drowned by large
    ones; `eps` keeps an image without hole at zero loss instead of NaN.
    """
    err = (pred - target).abs() * weight_mask  # (B, C, H, W)
    channels = pred.shape[1]
    per_image = err.flatten(1).sum(1) / (weight_mask.flatten(1).sum(1) * channels + eps)
    return per_image.mean()


def chroma_l1(pred_rgb: Tensor, target_rgb: Tensor) -> Tensor:
    """L1 between the Cb/Cr channels (BT.601, full range) of two RGB images in [-1, 1]."""
    pred_c = rgb_to_ycbcr(signed_to_unit(pred_rgb))[:, 1:]
    target_c = rgb_to_ycbcr(signed_to_unit(target_rgb))[:, 1:]
    return (pred_c - target_c).abs().mean()


def ssim_loss(pred: Tensor, target: Tensor) -> Tensor:
    """1 - SSIM (Gaussian window, pytorch-msssim) on [0, 1] images; differentiable."""
    return 1.0 - ssim(signed_to_unit(pred), signed_to_unit(target), data_range=1.0, size_average=True)
