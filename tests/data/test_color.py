"""color.py: PIL-exact 'L' in torch, YCbCr round trips, range helpers."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from restoration.data.color import (
    chroma_at_least,
    gray_chroma_to_rgb,
    rgb_to_gray_u8,
    rgb_to_luma,
    rgb_to_ycbcr,
    signed_to_u8,
    u8_to_signed,
    ycbcr_to_rgb,
)


def pil_gray(rgb_hwc: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb_hwc, "RGB").convert("L"))


def test_gray_equals_pil_bit_for_bit_on_random_and_extreme_values():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (64, 80, 3), dtype=np.uint8) for _ in range(4)]
    # every value of each channel at least once, plus the corners of the cube
    ramp = np.stack(np.meshgrid(np.arange(256), np.arange(256), indexing="ij"), -1).astype(np.uint8)
    images.append(np.concatenate([ramp, ramp[..., :1]], -1))
    images.append(np.concatenate([ramp[..., :1], ramp], -1))
    for rgb in images:
        ours = rgb_to_gray_u8(torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0))[0, 0].numpy()
        np.testing.assert_array_equal(ours, pil_gray(rgb))


def test_gray_on_real_photos(shared_photos):
    for path in shared_photos[:6]:
        rgb = np.array(Image.open(path).convert("RGB"))
        ours = rgb_to_gray_u8(torch.from_numpy(rgb).permute(2, 0, 1))[0].numpy()
        np.testing.assert_array_equal(ours, pil_gray(rgb))


def test_ycbcr_round_trip_and_luma_preserved():
    rgb = torch.rand(2, 3, 16, 16)
    np.testing.assert_allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)).numpy(), rgb.numpy(), atol=1e-5)
    gray = torch.rand(2, 1, 16, 16) * 0.5 + 0.25
    chroma = (torch.rand(2, 2, 16, 16) - 0.5) * 0.1
    out = gray_chroma_to_rgb(gray, chroma)
    np.testing.assert_allclose(rgb_to_ycbcr(out)[:, :1].numpy(), gray.numpy(), atol=1e-5)


def test_signed_u8_round_trip():
    u8 = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(signed_to_u8(u8_to_signed(u8)), u8)


def test_float_luma_is_bt601_summed_left_to_right_and_agrees_with_pil_gray():
    torch.manual_seed(0)
    rgb = torch.rand(2, 3, 16, 24) * 2 - 1
    luma = rgb_to_luma(rgb)
    assert luma.shape == (2, 1, 16, 24)
    r, g, b = rgb.unbind(dim=1)
    assert torch.equal(luma, (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(1))  # bit for bit, whatever the slicing
    assert torch.equal(luma, 0.299 * rgb[:, :1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:])
    u8 = signed_to_u8(rgb)
    assert (signed_to_u8(rgb_to_luma(u8_to_signed(u8))).int() - rgb_to_gray_u8(u8).int()).abs().max() <= 1


def test_chroma_floor_raises_faint_chroma_and_keeps_every_hue():
    chroma = torch.tensor([[0.003, -0.004], [0.1, 0.05], [0.0, 0.0], [-0.02, 0.0]]).T.reshape(1, 2, 2, 2)
    out = chroma_at_least(chroma, 0.02)
    norm = lambda c: c.norm(dim=1)  # noqa: E731
    assert torch.allclose(norm(out).flatten(), torch.tensor([0.02, norm(chroma)[0, 0, 1], 0.0, 0.02]))
    moved = norm(chroma).flatten() > 0
    cos = torch.nn.functional.cosine_similarity(out, chroma, dim=1).flatten()
    assert torch.allclose(cos[moved], torch.ones(3))  # the hue of every coloured pixel is kept
    assert torch.equal(chroma_at_least(chroma, 0.0), chroma)
