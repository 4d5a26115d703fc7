"""The hue-histogram loss: gradients, its histogram vs OpenCV's, and optimising toward a target raises C."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from restoration.data.color import signed_to_u8, u8_to_signed
from restoration.losses.hue_histogram import hue_histogram_loss, pearson, soft_hue_histogram
from restoration.metrics import color_similarity, hue_histogram


def test_gradients_are_nonzero():
    pred = (torch.rand(2, 3, 16, 16) * 2 - 1).requires_grad_()
    loss = hue_histogram_loss(pred, torch.rand(2, 3, 16, 16) * 2 - 1)
    loss.backward()
    assert pred.grad is not None
    assert pred.grad.abs().sum() > 0


def test_soft_histogram_tracks_opencv_on_a_photo(shared_photos):
    rgb = torch.from_numpy(np.array(Image.open(shared_photos[0]).convert("RGB").resize((128, 96))))
    rgb = rgb.permute(2, 0, 1)[None]
    exact = hue_histogram(rgb).float()
    soft = soft_hue_histogram(rgb.float() / 255, sigma=0.5)
    assert float(pearson(exact, soft)[0]) > 0.9  # soft binning spreads peaks over neighbouring bins
    assert torch.allclose(soft.sum(), exact.sum(), rtol=1e-4)


def test_optimising_hue_toward_target_lowers_loss_and_raises_exact_c():
    torch.manual_seed(0)
    target = torch.zeros(1, 3, 32, 32)
    target[:, 0, :, :16], target[:, 2, :, 16:] = 0.8, 0.7  # red and blue halves
    target = target * 2 - 1
    start = u8_to_signed(torch.full((1, 3, 32, 32), 90, dtype=torch.uint8))
    start = (start + 0.2 * torch.randn_like(start)).clamp(-1, 1)
    pred = start.clone().requires_grad_()
    opt = torch.optim.Adam([pred], lr=0.02)
    first = float(hue_histogram_loss(pred.detach(), target))
    c_before = float(color_similarity(signed_to_u8(pred.detach()), signed_to_u8(target))[0])
    for _ in range(150):
        opt.zero_grad()
        hue_histogram_loss(pred, target).backward()
        opt.step()
        with torch.no_grad():
            pred.clamp_(-1, 1)
    last = float(hue_histogram_loss(pred.detach(), target))
    c_after = float(color_similarity(signed_to_u8(pred.detach()), signed_to_u8(target))[0])
    assert last < first * 0.7
    assert c_after > c_before + 0.2
