"""The learned lost-region detector: the fallback for inputs where the exact contest rule does not apply.

- `restoration.data.exact_mask` is right for contest-style inputs (one region overwritten with one uniform gray):
  it recovers the mask exactly, needs no weights, and cannot be fooled by content that merely looks damaged.
- The learned `MaskDetector` (small U-Net on a timm encoder, `known_mask` logits) is for inputs that break that
  rule: noisy or blended fills, JPEG-compressed inputs, several holes, or photos with a large clipped flat area.
  Train it with the `detector` stage; the restoration pipeline tries the exact rule first and then this model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor, nn

from restoration.models.unet import TimmUNet


@dataclass
class DetectorConfig:
    encoder: str = "resnet18"
    pretrained: Path | None = None
    decoder_channels: list[int] = field(default_factory=lambda: [128, 64, 32, 16])


class MaskDetector(nn.Module):
    """(B, 1, H, W) gray in [-1, 1] -> (B, 1, H, W) logits of `known_mask` (positive = known)."""

    def __init__(self, cfg: DetectorConfig) -> None:
        super().__init__()
        self.unet = TimmUNet(
            encoder=cfg.encoder,
            in_chans=1,
            out_chans=1,
            decoder_channels=tuple(cfg.decoder_channels),
            pretrained=cfg.pretrained,
        )

    def forward(self, gray: Tensor) -> Tensor:
        return self.unet(gray)


def build_detector(cfg: DetectorConfig) -> MaskDetector:
    return MaskDetector(cfg)
