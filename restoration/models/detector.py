"""Finding the lost region of a gray input: the exact contest rule first, a learned U-Net as the fallback.

- `restoration.data.exact_mask` is right for contest-style inputs (one region overwritten with one uniform gray):
  it recovers the mask exactly, needs no weights, and cannot be fooled by content that merely looks damaged.
- The learned `MaskDetector` (small U-Net on a timm encoder, `known_mask` logits) is for inputs that break that
  rule: noisy or blended fills, JPEG-compressed inputs, several holes, or photos with a large clipped flat area.
  Train it with the `detector` stage.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from restoration.data.color import u8_to_signed
from restoration.data.exact_mask import exact_known_mask
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


@torch.no_grad()
def detect_known_mask(
    gray_u8: Tensor, detector: nn.Module | None = None, threshold: float = 0.5
) -> tuple[Tensor, Tensor]:
    """(B, 1, H, W) uint8 -> (known_mask (B, 1, H, W) float, used_exact (B,) bool).

    The exact rule where it applies; the learned detector for the rest. Without a detector, an image where the rule
    does not apply is treated as fully known (nothing is inpainted) and a warning says which ones.
    """
    known, found = exact_known_mask(gray_u8)
    missing = ~found
    if missing.any():
        if detector is None:
            warnings.warn(
                f"{int(missing.sum())} image(s) do not follow the contest fill rule and no learned detector was "
                "given: they are treated as fully known",
                stacklevel=2,
            )
        else:
            logits = detector(u8_to_signed(gray_u8[missing]))
            known[missing] = (torch.sigmoid(logits.float()) > threshold).float()
    return known, found
