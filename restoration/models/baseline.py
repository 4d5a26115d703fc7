"""The original notebook's approach, kept as a baseline to beat: one U-Net does inpainting and coloring at once.

U-Net 1 -> 3 (masked gray in, color out, tanh to [-1, 1]) + PatchGAN on (color, masked gray), trained pix2pix
style: BCE + 100 * L1 (`baseline_loss`). The U-Net uses the same timm-encoder U-Net as the other models so the
comparison is about the approach, not the backbone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from restoration.losses.adversarial import g_nonsaturating_loss
from restoration.losses.reconstruction import l1
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


def baseline_loss(fake_logits: Tensor, fake: Tensor, target: Tensor, l1_weight: float = 100.0) -> Tensor:
    """The notebook's generator loss: BCE(D(fake), real) + 100 * L1(fake, target)."""
    return g_nonsaturating_loss(fake_logits) + l1_weight * l1(fake, target)
