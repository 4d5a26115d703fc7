"""Pixel losses on images in [-1, 1]: L1, hole-normalised L1, chroma L1 (YCbCr), SSIM (pytorch-msssim) and the hole
SSIM, a differentiable proxy of the contest's M."""

from __future__ import annotations

import torch.nn.functional as F
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


def hole_ssim_loss(pred: Tensor, target: Tensor, hole_mask: Tensor, win: int = 7) -> Tensor:
    """1 - SSIM over the lost pixels, a proxy of the contest's M, on (B, C, H, W) images in [-1, 1].

    M is scikit-image's SSIM of the lost pixels taken in raster order: a 1-D, 7-sample box window that slides along
    each row of the hole (and wraps to the next row). So this is the same statistic on the image grid: a 1 x `win`
    box window along rows, sample covariance (N / (N - 1)), K1 0.01, K2 0.03, data range 1 (on [0, 1]), its map
    averaged over the hole pixels (`hole_mask`, 1 = lost) of each image, then over the batch. A masked mean rather
    than the hole's bounding box: the box would mostly hold known pixels, which the composite already gets right,
    and dilute the gradient where M is decided."""
    x, y = signed_to_unit(pred), signed_to_unit(target)
    pad = (win // 2, win // 2, 0, 0)

    def box(t: Tensor) -> Tensor:  # (B, C, H, W) -> the 1 x win mean around each pixel (replicated borders)
        return F.avg_pool2d(F.pad(t, pad, mode="replicate"), (1, win), stride=1)

    ux, uy = box(x), box(y)
    cov = win / (win - 1)
    vx, vy, vxy = cov * (box(x * x) - ux * ux), cov * (box(y * y) - uy * uy), cov * (box(x * y) - ux * uy)
    c1, c2 = 0.01**2, 0.03**2
    smap = (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))  # (B, C, H, W)
    hole = hole_mask.expand_as(smap)
    area = hole.flatten(1).sum(1)
    per_image = (smap * hole).flatten(1).sum(1) / area.clamp_min(1.0)
    return ((1.0 - per_image) * (area > 0).to(per_image.dtype)).mean()  # an image without hole adds 0
