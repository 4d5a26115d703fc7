"""The colorizer: a U-Net on a timm encoder that predicts chroma only, so its RGB has exactly the input's luma.

Input gray (B, 1, H, W) in [-1, 1]; output RGB (B, 3, H, W) in [-1, 1]. The network predicts Cb/Cr (BT.601, full
range: Y is the same luma as PIL's 'L'), either directly, bounded by tanh (`head: regression`), or as a distribution
over a grid of Cb/Cr bins read out by its annealed mean (`head: bins`, Zhang et al., ECCV 2016: a regression of
chroma learns the average colour of its photos, a desaturated sepia; a distribution trained with class rebalancing
keeps the rarer, vivid hues, and the annealed mean picks them without the mean's greying).
`restoration.data.color.gray_chroma_to_rgb` adds them to the gray with zero-luma constants and scales each pixel's
chroma into the RGB gamut instead of clipping, so the output is in range and its luma equals the input before uint8
rounding: coloring can never damage the structure (SSIM) that the known pixels and the inpainter provide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from einops import einsum
from torch import Tensor, nn

from restoration.data.color import gray_chroma_to_rgb, rgb_to_ycbcr, signed_to_unit, unit_to_signed
from restoration.models.unet import TimmUNet
from restoration.precision import widen

CHROMA_MAX = 0.5  # Cb/Cr offsets live in [-0.5, 0.5]


@dataclass
class ColorizerConfig:
    encoder: str = "resnet34"
    pretrained: Path | None = None  # local timm weights file for the encoder (never downloaded)
    decoder_channels: list[int] = field(default_factory=lambda: [256, 128, 64, 32])
    head: Literal["regression", "bins"] = "regression"
    bins: int = 10  # `head: bins`: Cb and Cr each cut into this many bins (bins**2 classes; 16: ~2.5x the step time)
    temperature: float = 0.38  # `head: bins`: the annealed mean's temperature (1 = the mean, -> 0 = the mode)

    def __post_init__(self) -> None:
        if self.head not in ("regression", "bins"):
            raise ValueError(f"colorizer.head must be regression or bins, got {self.head!r}")
        if self.bins < 2 or self.temperature <= 0:
            raise ValueError("colorizer.bins must be >= 2 and colorizer.temperature > 0")


class Colorizer(nn.Module):
    def __init__(self, cfg: ColorizerConfig) -> None:
        super().__init__()
        self.head, self.temperature = cfg.head, cfg.temperature
        self.unet = TimmUNet(
            encoder=cfg.encoder,
            in_chans=1,
            out_chans=2 if cfg.head == "regression" else cfg.bins**2,
            decoder_channels=tuple(cfg.decoder_channels),
            pretrained=cfg.pretrained,
        )
        if cfg.head == "bins":
            edges = torch.linspace(-CHROMA_MAX, CHROMA_MAX, cfg.bins + 1)
            mids = (edges[1:] + edges[:-1]) / 2
            cb, cr = torch.meshgrid(mids, mids, indexing="ij")
            self.register_buffer("centers", torch.stack([cb.flatten(), cr.flatten()], dim=1))  # (Q, 2) Cb, Cr
            # how often each bin is the true one in the training photos (a running estimate; for rebalancing)
            self.register_buffer("prior", torch.full((cfg.bins**2,), 1.0 / cfg.bins**2))

    def chroma_and_logits(self, gray: Tensor) -> tuple[Tensor, Tensor | None]:
        """(B, 1, H, W) gray in [-1, 1] -> (B, 2, H, W) Cb/Cr offsets in [-0.5, 0.5], and the bins' logits
        (B, Q, H, W) with `head: bins` (else None)."""
        out = self.unet(gray)
        if self.head == "regression":
            return torch.tanh(out) * CHROMA_MAX, None
        p = F.softmax(widen(out) / self.temperature, dim=1)
        return einsum(p, self.centers.to(p.dtype), "b q h w, q c -> b c h w"), out

    def chroma(self, gray: Tensor) -> Tensor:
        """(B, 1, H, W) gray in [-1, 1] -> (B, 2, H, W) Cb/Cr offsets in [-0.5, 0.5]."""
        return self.chroma_and_logits(gray)[0]

    def forward(self, gray: Tensor, with_logits: bool = False) -> Tensor | tuple[Tensor, Tensor | None]:
        """RGB (and, with `with_logits`, the bins' logits, for their loss: through `forward`, so that DDP syncs)."""
        gray01 = signed_to_unit(widen(gray))  # first: the order of the two branches fixes the gradients' sum order
        chroma, logits = self.chroma_and_logits(gray)
        rgb = unit_to_signed(gray_chroma_to_rgb(gray01, widen(chroma)))
        return (rgb, logits) if with_logits else rgb

    @torch.no_grad()
    def bins_target(self, gt_rgb: Tensor, momentum: float = 0.99) -> tuple[Tensor, Tensor]:
        """The true bins (B, H, W) of a batch of true colours (B, 3, H, W) in [-1, 1], and the running bin
        frequencies, first moved towards this batch's (what `losses.color_gan.rebalanced_ce` weighs by)."""
        target = self.bin_of(gt_rgb)
        counts = torch.bincount(target.flatten(), minlength=self.prior.numel()).to(self.prior.dtype)
        self.prior.mul_(momentum).add_(counts / counts.sum(), alpha=1.0 - momentum)
        return target, self.prior

    def bin_of(self, rgb: Tensor) -> Tensor:
        """(B, 3, H, W) RGB in [-1, 1] -> (B, H, W) index of its Cb/Cr bin."""
        chroma = rgb_to_ycbcr(signed_to_unit(widen(rgb)))[:, 1:] - 0.5  # (B, 2, H, W) in [-0.5, 0.5]
        bins = int(round(self.prior.numel() ** 0.5))
        idx = ((chroma + CHROMA_MAX) / (2 * CHROMA_MAX) * bins).long().clamp(0, bins - 1)
        return idx[:, 0] * bins + idx[:, 1]


def build_colorizer(cfg: ColorizerConfig) -> Colorizer:
    return Colorizer(cfg)
