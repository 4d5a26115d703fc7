"""The fill prior: a fast, deterministic harmonic fill of the lost pixels in torch, the starting point of MAT with
`mat.prior: fill` (the network paints a residual on top of it).

The lost pixels are solved for Laplace's equation with the known pixels as boundary values (a harmonic fill, the
smooth surface the classical inpainters approximate; the pipeline's `fill` mode solves the biharmonic one with
scikit-image, `restoration.anchors`). Coarse to fine, as the push-pull of the Lumigraph (Gortler et al., SIGGRAPH
1996) followed by Jacobi relaxation: the image and its known mask are averaged down a 2x pyramid to one pixel, a
coarse pixel being known when any pixel it covers is (its value the mean of those); then from the coarsest level up,
each level's lost pixels start from the bilinear upsampling of the level below and take a few Jacobi steps (each
lost pixel becomes the mean of its four neighbours, the known ones fixed). A few steps per level suffice because
the upsampled solution is already close: the error left at each level is of the level's own wavelength.

Every operation is a whole-tensor op (pooling, interpolation, shifted slices), so it runs inside training batches on
CPU and GPU, in fp32 whatever the autocast around it, and is deterministic (no atomics, no randomness).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

JACOBI_STEPS = 8  # per pyramid level: M within 0.005 of 64 steps at 128 px, 5x faster (BENCHMARKS.md)


def harmonic_fill(img: Tensor, known: Tensor, *, steps: int = JACOBI_STEPS) -> Tensor:
    """img (B, C, H, W), known (B, 1, H, W) with 1 = known -> (B, C, H, W) in img's dtype: the known pixels are img's
    exactly, the lost ones its harmonic fill (0 in an image without a known pixel). The values img holds in the
    lost pixels are never read."""
    with torch.autocast(device_type=img.device.type, enabled=False):
        fixed = known > 0.5  # (B, 1, H, W)
        x, w = img.float() * fixed, fixed.float()
        pyramid = [(x, w)]  # (premultiplied image, known fraction) per level, finest first
        while max(pyramid[-1][1].shape[-2:]) > 1:
            x, w = pyramid[-1]
            pyramid.append((F.avg_pool2d(x, 2, ceil_mode=True), F.avg_pool2d(w, 2, ceil_mode=True)))
        est = None
        for x, w in reversed(pyramid):
            has = w > 0
            value = x / w.clamp_min(1e-12)  # the mean of the known pixels each pixel covers
            if est is None:
                est = torch.where(has, value, 0.0)
                continue
            est = F.interpolate(est, size=x.shape[-2:], mode="bilinear", align_corners=False)
            est = _relax(torch.where(has, value, est), has, steps)
    return torch.where(fixed, img, est.to(img.dtype))


def _relax(est: Tensor, fixed: Tensor, steps: int) -> Tensor:
    """`steps` Jacobi steps of Laplace's equation on the pixels where `fixed` is False (edges replicated)."""
    for _ in range(steps):
        p = F.pad(est, (1, 1, 1, 1), mode="replicate")  # (B, C, h + 2, w + 2)
        mean = (p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:]) * 0.25
        est = torch.where(fixed, est, mean)
    return est
