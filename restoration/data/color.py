"""Color spaces and value ranges, shared by data, models, losses and metrics.

Grayscale is *exactly* PIL's ``Image.convert('L')`` (ITU-R 601 luma in PIL's 16-bit fixed point): the contest's
inputs equal it outside the lost region, so a torch version that matches PIL bit for bit lets GPU batches derive
masks and compose inputs without a round trip through PIL. Chroma uses YCbCr (BT.601, full range) because its Y is
the same luma as 'L': a colorizer that only predicts Cb/Cr cannot damage the known structure.
"""

from __future__ import annotations

import kornia.color
import torch
from torch import Tensor

# PIL's fixed-point weights (libImaging/Convert.c): L = (R*19595 + G*38470 + B*7471 + 0x8000) >> 16
_PIL_L_WEIGHTS = (19595, 38470, 7471)
_PIL_L_ROUND = 0x8000


def rgb_to_gray_u8(rgb_u8: Tensor) -> Tensor:
    """PIL-exact 'L' of uint8 RGB. (B, 3, H, W) or (3, H, W) uint8 -> same shape with 1 channel, uint8."""
    if rgb_u8.dtype != torch.uint8:
        raise TypeError(f"rgb_to_gray_u8 expects uint8, got {rgb_u8.dtype}")
    channels = rgb_u8.to(torch.int32)
    r, g, b = channels.unbind(dim=-3)
    gray = (r * _PIL_L_WEIGHTS[0] + g * _PIL_L_WEIGHTS[1] + b * _PIL_L_WEIGHTS[2] + _PIL_L_ROUND) >> 16
    return gray.unsqueeze(-3).to(torch.uint8)


def u8_to_signed(x_u8: Tensor) -> Tensor:
    """uint8 [0, 255] -> float [-1, 1] (the range inside networks)."""
    return x_u8.float().div(127.5).sub(1.0)


def signed_to_unit(x: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1], clamped."""
    return x.add(1.0).mul(0.5).clamp(0.0, 1.0)


def unit_to_signed(x01: Tensor) -> Tensor:
    """[0, 1] -> [-1, 1]."""
    return x01.mul(2.0).sub(1.0)


def signed_to_u8(x: Tensor) -> Tensor:
    """[-1, 1] float -> uint8 with rounding (not truncation), clamped."""
    return x.add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def rgb_to_ycbcr(rgb01: Tensor) -> Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> YCbCr in [0, 1] (BT.601 full range; Cb, Cr centred at 0.5)."""
    return kornia.color.rgb_to_ycbcr(rgb01)


def ycbcr_to_rgb(ycbcr01: Tensor) -> Tensor:
    """(B, 3, H, W) YCbCr in [0, 1] -> RGB in [0, 1] (not clamped, so gradients are not cut)."""
    return kornia.color.ycbcr_to_rgb(ycbcr01)


def gray_chroma_to_rgb(gray01: Tensor, chroma: Tensor) -> Tensor:
    """Combine luma (B, 1, H, W) in [0, 1] with Cb/Cr offsets (B, 2, H, W) around 0 into RGB in [0, 1].

    The result's BT.601 luma equals `gray01` wherever no channel is clipped, which is why colorizers predict
    chroma only.
    """
    ycbcr = torch.cat([gray01, chroma + 0.5], dim=1)  # (B, 3, H, W)
    return ycbcr_to_rgb(ycbcr)
