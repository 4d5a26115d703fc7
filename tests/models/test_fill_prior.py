"""The torch harmonic fill, MAT's fill prior: known pixels kept, a smooth bounded fill, deterministic, any size."""

from __future__ import annotations

import pytest
import torch

from restoration.models.fill_prior import harmonic_fill


def hole_mask(batch: int, h: int, w: int) -> torch.Tensor:
    known = torch.ones(batch, 1, h, w)
    known[:, :, h // 4 : 3 * h // 4, w // 5 : 4 * w // 5] = 0
    return known


@pytest.mark.parametrize("size", [(64, 64), (37, 50), (3, 130)])
def test_known_pixels_exact_and_fill_within_their_range(size):
    torch.manual_seed(0)
    img = torch.rand(2, 3, *size) * 2 - 1
    known = hole_mask(2, *size)
    filled = harmonic_fill(img, known)
    assert filled.shape == img.shape
    assert filled.dtype == img.dtype
    assert torch.equal(filled * known, img * known)
    lo, hi = img.amin(dim=(2, 3), keepdim=True), img.amax(dim=(2, 3), keepdim=True)
    assert (filled >= lo - 1e-6).all()
    assert (filled <= hi + 1e-6).all()
    garbage = img.clone()
    garbage[known.expand_as(img) == 0] = 7.0
    assert torch.equal(harmonic_fill(garbage, known), filled)  # the hole's values are never read
    assert torch.equal(harmonic_fill(img, known), filled)  # deterministic


def test_constant_and_linear_images_are_filled_with_themselves():
    known = hole_mask(1, 64, 64)
    flat = torch.full((1, 1, 64, 64), 0.3)
    assert torch.allclose(harmonic_fill(flat, known), flat, atol=1e-6)
    ramp = torch.linspace(-1, 1, 64).expand(1, 1, 64, 64).contiguous()  # harmonic: Laplace's equation holds
    err = (harmonic_fill(ramp, known, steps=64) - ramp).abs().max()
    assert err < 0.02


def test_no_known_pixel_gives_zero_and_bf16_autocast_keeps_fp32_maths():
    img = torch.rand(1, 3, 16, 16)
    assert torch.equal(harmonic_fill(img, torch.zeros(1, 1, 16, 16)), torch.zeros_like(img))
    known = hole_mask(1, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = harmonic_fill(img, known)
    assert torch.equal(inside, harmonic_fill(img, known))
