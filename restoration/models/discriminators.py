"""PatchGAN discriminator (pix2pix, 70x70 receptive field at 3 layers) with spectral norm, conditioned on gray.

Spectral norm instead of batch norm: it keeps the discriminator Lipschitz-bounded without batch statistics, which
behave badly with tiny per-GPU batches and with real/fake concatenated in one forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm


@dataclass
class PatchDiscriminatorConfig:
    channels: int = 64
    layers: int = 3
    image_channels: int = 3  # the judged image; the gray condition adds one channel


class PatchDiscriminator(nn.Module):
    def __init__(self, cfg: PatchDiscriminatorConfig) -> None:
        super().__init__()
        ch = cfg.channels
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(cfg.image_channels + 1, ch, 4, 2, 1)), nn.LeakyReLU(0.2)]
        cin = ch
        for i in range(1, cfg.layers + 1):
            cout = ch * 2 ** min(i, 3)
            stride = 2 if i < cfg.layers else 1
            layers += [spectral_norm(nn.Conv2d(cin, cout, 4, stride, 1)), nn.LeakyReLU(0.2)]
            cin = cout
        layers.append(spectral_norm(nn.Conv2d(cin, 1, 4, 1, 1)))
        self.net = nn.Sequential(*layers)

    def forward(self, image: Tensor, gray: Tensor) -> Tensor:
        """(B, C, H, W) image and (B, 1, H, W) gray, both in [-1, 1] -> (B, 1, h, w) patch logits."""
        return self.net(torch.cat([image, gray], dim=1))


def build_patch_discriminator(cfg: PatchDiscriminatorConfig) -> PatchDiscriminator:
    return PatchDiscriminator(cfg)
