"""A differentiable proxy of the contest's color term C: correlation of soft hue histograms.

C is the Pearson correlation of 180-bin OpenCV hue histograms (H = hue / 2). Here the hue is computed with the same
geometry on float RGB, and each pixel is spread over nearby bins with a Gaussian kernel (sigma in bins, wrapping
around the circle) so that the gradient reaches pixels whose hue is several bins away from where it should be, not
only the two neighbouring bins. Achromatic pixels are binned the way OpenCV bins them: into bin 0. A pixel's
chroma (max - min, in 1/255 steps, clipped to 1) blends between its hue bins and bin 0, so a pixel that is one gray
level away from gray counts as chromatic, exactly like the 8-bit conversion, while the blend stays differentiable.
"""

from __future__ import annotations

import torch
from torch import Tensor

from restoration.data.color import signed_to_unit
from restoration.precision import widen

BINS = 180


def soft_hue(rgb01: Tensor) -> tuple[Tensor, Tensor]:
    """(B, 3, H, W) RGB in [0, 1] -> (hue in [0, 180) as OpenCV's H, chroma weight in [0, 1]), each (B, H, W)."""
    r, g, b = rgb01.unbind(dim=1)
    v = torch.maximum(torch.maximum(r, g), b)
    vmin = torch.minimum(torch.minimum(r, g), b)
    diff = v - vmin
    safe = diff.clamp_min(1e-6)
    sector = torch.where(v == r, (g - b) / safe, torch.where(v == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    hue = torch.remainder(sector * 30.0, float(BINS))  # 60 degrees per sector, halved like OpenCV's 8-bit H
    chroma = (diff * 255.0).clamp(0.0, 1.0)
    return hue, chroma


def soft_hue_histogram(rgb01: Tensor, sigma: float = 1.5) -> Tensor:
    """(B, 180) soft histogram (each pixel contributes a total weight of 1)."""
    hue, chroma = soft_hue(rgb01)
    hue, chroma = hue.flatten(1), chroma.flatten(1)  # (B, N)
    reach = max(1, int(3 * sigma))
    base = torch.floor(hue)
    offsets = torch.arange(-reach, reach + 1, device=hue.device, dtype=hue.dtype)  # (K,)
    centers = base.unsqueeze(-1) + offsets  # (B, N, K)
    weights = torch.exp(-0.5 * ((hue.unsqueeze(-1) - centers) / sigma) ** 2)
    weights = weights / weights.sum(-1, keepdim=True) * chroma.unsqueeze(-1)
    index = torch.remainder(centers, BINS).long()
    hist = torch.zeros(hue.shape[0], BINS, device=hue.device, dtype=weights.dtype)
    hist = hist.scatter_add(1, index.flatten(1), weights.flatten(1))
    achromatic = (1.0 - chroma).sum(1)  # (B,)
    return torch.cat([hist[:, :1] + achromatic.unsqueeze(1), hist[:, 1:]], dim=1)


def pearson(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.square().sum(1).mul(b.square().sum(1)).add(eps).sqrt())


def hue_histogram_loss(pred: Tensor, target: Tensor, sigma: float = 1.5) -> Tensor:
    """1 - correlation of the soft hue histograms of two RGB batches in [-1, 1], averaged over the batch."""
    p = soft_hue_histogram(signed_to_unit(widen(pred)), sigma)
    with torch.no_grad():
        t = soft_hue_histogram(signed_to_unit(widen(target)), sigma)
    return (1.0 - pearson(p, t)).mean()
