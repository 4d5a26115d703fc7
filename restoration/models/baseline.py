"""The original notebook's approach, kept as a baseline to beat: one U-Net does inpainting and coloring at once.

U-Net 1 -> 3 (masked gray in, color out, tanh to [-1, 1]) + PatchGAN on (color, masked gray), trained pix2pix
style by the `gan_baseline` task (BCE + 100 * L1). The U-Net uses the same timm-encoder U-Net as the other models so
the comparison is about the approach, not the backbone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from restoration.models.discriminators import PatchDiscriminator, PatchDiscriminatorConfig
from restoration.models.unet import TimmUNet


@dataclass
class BaselineConfig:
    encoder: str = "resnet34"
    decoder_channels: list[int] = field(default_factory=lambda: [256, 128, 64, 32])
    disc: PatchDiscriminatorConfig = field(default_factory=PatchDiscriminatorConfig)


class BaselineGenerator(nn.Module):
    def __init__(self, cfg: BaselineConfig) -> None:
        super().__init__()
        self.unet = TimmUNet(encoder=cfg.encoder, in_chans=1, out_chans=3, decoder_channels=tuple(cfg.decoder_channels))

    def forward(self, masked_gray: Tensor) -> Tensor:
        """(B, 1, H, W) masked gray in [-1, 1] -> (B, 3, H, W) RGB in [-1, 1]."""
        return torch.tanh(self.unet(masked_gray))


def build_baseline(cfg: BaselineConfig) -> tuple[BaselineGenerator, PatchDiscriminator]:
    return BaselineGenerator(cfg), PatchDiscriminator(cfg.disc)
