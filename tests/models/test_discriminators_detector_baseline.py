"""PatchGAN, learned mask detector and the notebook baseline: shapes, gradients."""

from __future__ import annotations

import torch

from restoration.losses.adversarial import g_nonsaturating_loss
from restoration.losses.reconstruction import l1
from restoration.models.baseline import BaselineConfig, build_baseline
from restoration.models.detector import DetectorConfig, build_detector
from restoration.models.discriminators import PatchDiscriminatorConfig, build_patch_discriminator


def test_patch_discriminator_shapes_and_gradients():
    D = build_patch_discriminator(PatchDiscriminatorConfig(channels=16, layers=3))
    rgb = (torch.rand(2, 3, 64, 64) * 2 - 1).requires_grad_()
    logits = D(rgb, torch.rand(2, 1, 64, 64))
    assert logits.shape[:2] == (2, 1)
    assert logits.shape[-1] > 1  # patches, not one logit
    logits.mean().backward()
    assert rgb.grad.abs().sum() > 0


def test_baseline_forward_backward():
    G, D = build_baseline(BaselineConfig(encoder="resnet18", decoder_channels=[32, 16, 16, 8]))
    masked = torch.rand(2, 1, 64, 64) * 2 - 1
    fake = G(masked)
    assert fake.shape == (2, 3, 64, 64)
    assert fake.abs().max() <= 1
    loss = g_nonsaturating_loss(D(fake, masked)) + 100 * l1(fake, torch.zeros_like(fake))  # the notebook's G loss
    loss.backward()
    assert next(G.parameters()).grad is not None


def test_detector_gives_known_mask_logits_at_input_size():
    torch.manual_seed(0)
    detector = build_detector(DetectorConfig(encoder="resnet18", decoder_channels=[16, 16, 8, 8]))
    gray = torch.rand(2, 1, 64, 64) * 2 - 1
    logits = detector(gray)
    assert logits.shape == (2, 1, 64, 64)
    logits.mean().backward()
    assert next(detector.parameters()).grad is not None
