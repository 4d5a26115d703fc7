"""The colorizer: a U-Net on a timm encoder that predicts chroma only, so its RGB has exactly the input's luma.

Input gray (B, 1, H, W) in [-1, 1]; output RGB (B, 3, H, W) in [-1, 1]. The network predicts Cb/Cr (BT.601, full
range: Y is the same luma as PIL's 'L'), bounded by tanh; `restoration.data.color.gray_chroma_to_rgb` adds them to
the gray with zero-luma constants and scales each pixel's chroma into the RGB gamut instead of clipping, so the
output is in range and its luma equals the input before uint8 rounding: coloring can never damage the structure
(SSIM) that the known pixels and the inpainter provide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from restoration.data.color import gray_chroma_to_rgb, signed_to_unit, unit_to_signed
from restoration.models.unet import TimmUNet
from restoration.precision import widen

CHROMA_MAX = 0.5  # Cb/Cr offsets live in [-0.5, 0.5]


@dataclass
class ColorizerConfig:
    encoder: str = "resnet34"
    pretrained: Path | None = None  # local timm weights file for the encoder (never downloaded)
    decoder_channels: list[int] = field(default_factory=lambda: [256, 128, 64, 32])


class Colorizer(nn.Module):
    def __init__(self, cfg: ColorizerConfig) -> None:
        super().__init__()
        self.unet = TimmUNet(
            encoder=cfg.encoder,
            in_chans=1,
            out_chans=2,
            decoder_channels=tuple(cfg.decoder_channels),
            pretrained=cfg.pretrained,
        )

    def chroma(self, gray: Tensor) -> Tensor:
        """(B, 1, H, W) gray in [-1, 1] -> (B, 2, H, W) Cb/Cr offsets in [-0.5, 0.5]."""
        return torch.tanh(self.unet(gray)) * CHROMA_MAX

    def forward(self, gray: Tensor) -> Tensor:
        rgb01 = gray_chroma_to_rgb(signed_to_unit(widen(gray)), widen(self.chroma(gray)))
        return unit_to_signed(rgb01)


def build_colorizer(cfg: ColorizerConfig) -> Colorizer:
    return Colorizer(cfg)
