"""Adversarial, reconstruction and perceptual losses."""

from __future__ import annotations

import pytest
import torch

from restoration.losses.adversarial import (
    d_hinge_loss,
    d_logistic_loss,
    g_hinge_loss,
    g_nonsaturating_loss,
    r1_penalty,
)
from restoration.losses.perceptual import build_perceptual_loss
from restoration.losses.reconstruction import chroma_l1, l1, masked_l1, ssim_loss


def test_logistic_and_hinge_losses_order_good_and_bad_discriminators():
    good_real, good_fake = torch.full((4,), 5.0), torch.full((4,), -5.0)
    assert d_logistic_loss(good_real, good_fake) < d_logistic_loss(good_fake, good_real)
    assert d_hinge_loss(good_real, good_fake) == 0
    assert g_nonsaturating_loss(good_real) < g_nonsaturating_loss(good_fake)
    assert g_hinge_loss(good_real) < g_hinge_loss(good_fake)


def test_r1_penalty_matches_analytic_gradient():
    x = torch.randn(3, 2, 4, 4, requires_grad=True)
    logits = x.square().flatten(1).sum(1)  # dD/dx = 2x
    penalty = r1_penalty(logits, x)
    assert float(penalty.detach()) == pytest.approx(float((4 * x.detach().square()).flatten(1).sum(1).mean()), rel=1e-5)
    penalty.backward()  # the graph is kept for backprop
    assert torch.allclose(x.grad, 8 * x.detach() / 3, atol=1e-5)


def test_masked_l1_is_normalised_per_image_by_its_hole():
    pred, target = torch.ones(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
    mask = torch.zeros(2, 1, 4, 4)
    mask[0, :, :1, :1] = 1  # a 1-pixel hole
    mask[1] = 1  # a full hole
    assert float(masked_l1(pred, target, mask, eps=0.0)) == pytest.approx(1.0)
    assert float(masked_l1(pred, target, torch.zeros_like(mask))) == 0.0


def test_chroma_l1_ignores_luma_and_ssim_loss_is_zero_for_equal_images():
    gray = torch.rand(1, 1, 8, 8) * 2 - 1
    assert float(chroma_l1(gray.expand(-1, 3, -1, -1), (gray * 0.5).expand(-1, 3, -1, -1))) == pytest.approx(
        0, abs=1e-6
    )
    img = torch.rand(1, 3, 32, 32) * 2 - 1
    assert float(ssim_loss(img, img)) == pytest.approx(0, abs=1e-5)
    assert float(l1(img, -img)) > 0


@pytest.mark.parametrize("backbone", ["vgg19", "resnet18"])
def test_perceptual_loss_is_frozen_and_differentiable(backbone, tmp_path):
    from safetensors.torch import save_file

    loss_fn = build_perceptual_loss(None, backbone=backbone)
    assert not any(p.requires_grad for p in loss_fn.parameters())
    pred = (torch.rand(1, 3, 64, 64) * 2 - 1).requires_grad_()
    target = torch.rand(1, 3, 64, 64) * 2 - 1
    loss = loss_fn(pred, target)
    loss.backward()
    assert pred.grad.abs().sum() > 0
    assert float(loss_fn(target, target)) == pytest.approx(0, abs=1e-6)
    # weights round trip through a local file, never a download
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in loss_fn.net.state_dict().items()}, str(path))
    again = build_perceptual_loss(path, backbone=backbone)
    assert float(again(pred, target).detach()) == pytest.approx(float(loss.detach()), rel=1e-5)


def test_hole_ssim_is_zero_for_the_truth_and_punishes_noise_in_the_hole_only():
    from restoration.losses.reconstruction import hole_ssim_loss

    torch.manual_seed(0)
    target = torch.linspace(-0.8, 0.8, 32).view(1, 1, 1, 32).expand(2, 1, 24, 32).clone()
    hole = torch.zeros(2, 1, 24, 32)
    hole[0, :, 6:18, 8:24] = 1  # the second image has no hole: it adds nothing
    assert hole_ssim_loss(target, target, hole).abs() < 1e-6
    noisy = target + 0.3 * torch.randn_like(target) * hole
    smooth = target + 0.1 * hole  # a flat offset keeps the structure M measures
    assert hole_ssim_loss(noisy, target, hole) > hole_ssim_loss(smooth, target, hole)
    outside = target + 0.3 * torch.randn_like(target) * (1 - torch.nn.functional.max_pool2d(hole, 9, 1, 4))
    assert hole_ssim_loss(outside, target, hole).abs() < 1e-6  # pixels far from the hole do not count
    pred = noisy.clone().requires_grad_(True)
    hole_ssim_loss(pred, target, hole).backward()
    assert pred.grad[1].abs().sum() == 0
    assert pred.grad[0].abs().sum() > 0


def test_aligned_terms_are_off_by_default_and_appear_when_weighted():
    from restoration.losses.color_gan import color_g_terms
    from restoration.losses.loss_config import LossConfig, active, weigh

    rgb, gt = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    gray, known = rgb.mean(1, keepdim=True), torch.ones(2, 1, 32, 32)
    known[..., 8:20, 8:20] = 0
    off = LossConfig(color_adv=0.0).color_weights()
    assert "color_hole_ssim" not in color_g_terms(None, rgb, gray, gt, terms=active(off), known=known)
    on = LossConfig(color_adv=0.0, color_hole_ssim=2.0).color_weights()
    terms = color_g_terms(None, rgb, gray, gt, terms=active(on), known=known)
    assert "color_adv" not in terms  # a zero weight is not computed (no discriminator needed)
    assert terms["color_hole_ssim"] > 0
    assert torch.equal(weigh(terms, on)["color_hole_ssim"], 2.0 * terms["color_hole_ssim"])  # the stage weighs
    with pytest.raises(ValueError, match="known mask"):
        color_g_terms(None, rgb, gray, gt, terms=active(on))
