"""The colorizer keeps the input's luma exactly, for any encoder; forward/backward on CPU."""

from __future__ import annotations

import pytest
import torch

from restoration.data.color import rgb_to_gray_u8, rgb_to_luma, signed_to_u8
from restoration.models.colorizer import ColorizerConfig, build_colorizer


@pytest.mark.parametrize("encoder", ["resnet34", "efficientnet_b0", "convnext_atto"])
def test_output_luma_equals_input_gray(encoder):
    torch.manual_seed(0)
    model = build_colorizer(ColorizerConfig(encoder=encoder, decoder_channels=[32, 16, 16, 8])).eval()
    with torch.no_grad():
        # make the random chroma large so the gamut fitting is exercised
        model.unet.head.weight.mul_(50)
    gray_u8 = torch.randint(0, 256, (2, 1, 64, 64), dtype=torch.uint8)
    gray = gray_u8.float() / 127.5 - 1
    with torch.no_grad():
        rgb = model(gray)
    assert rgb.shape == (2, 3, 64, 64)
    assert rgb.min() >= -1 - 1e-5
    assert rgb.max() <= 1 + 1e-5
    luma = rgb_to_luma(rgb)
    assert (luma - gray).abs().max() < 1e-4  # before uint8 rounding
    back = rgb_to_gray_u8(signed_to_u8(rgb))
    assert (back.int() - gray_u8.int()).abs().max() <= 1  # after uint8 rounding
    assert (rgb[:, 0] - rgb[:, 2]).abs().mean() > 0.01  # it does color


def test_forward_backward_and_odd_sizes():
    model = build_colorizer(ColorizerConfig(encoder="resnet18", decoder_channels=[32, 16, 16, 8]))
    gray = torch.rand(2, 1, 50, 70) * 2 - 1
    out = model(gray)
    assert out.shape == (2, 3, 50, 70)
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_pretrained_loads_from_a_local_file_only(tmp_path):
    import timm
    from safetensors.torch import save_file

    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_colorizer(ColorizerConfig(encoder="resnet18", pretrained=tmp_path / "missing.safetensors"))
    source = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    model = build_colorizer(ColorizerConfig(encoder="resnet18", pretrained=path))
    # timm folds the RGB stem into one input channel by summing
    stem = model.unet.encoder.conv1.weight
    assert torch.allclose(stem, source.conv1.weight.sum(dim=1, keepdim=True), atol=1e-6)


def test_the_bins_head_reads_out_a_chroma_in_range_and_learns_vivid_colours_by_rebalanced_ce():
    """`head: bins` (Zhang et al.): the annealed mean of the bins is a chroma in range whose RGB keeps the luma; the
    rebalanced cross-entropy pulls the readout towards a rare saturated colour, which an L1 regression averages away."""
    from restoration.losses.color_gan import rebalanced_ce

    torch.manual_seed(0)
    cfg = ColorizerConfig(encoder="resnet18", decoder_channels=[16, 16, 8, 8], head="bins", bins=8)
    model = build_colorizer(cfg)
    gray = torch.rand(2, 1, 32, 32) * 2 - 1
    rgb, logits = model(gray, with_logits=True)
    assert logits.shape == (2, 64, 32, 32)
    assert model.chroma(gray).abs().max() <= 0.5
    assert (rgb_to_luma(rgb) - gray).abs().max() < 1e-4
    # a red target: the rebalanced loss moves the readout's chroma towards red's bin
    red = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1).expand(2, 3, 32, 32)
    target, prior = model.bins_target(red)
    assert prior.argmax() == target[0, 0, 0]
    assert abs(float(prior.sum()) - 1) < 1e-5
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
    before = model.chroma(gray)[:, 1].mean()  # Cr, high for red
    for _ in range(40):
        optimizer.zero_grad()
        _, logits = model(gray, with_logits=True)
        rebalanced_ce(logits, *model.bins_target(red)).backward()
        optimizer.step()
    assert model.chroma(gray)[:, 1].mean() > before + 0.1


def test_a_bins_colorizer_round_trips_through_an_export(tmp_path):
    from restoration.pipeline import load_pipeline
    from restoration.weights import export_weights

    cfg = ColorizerConfig(encoder="resnet18", decoder_channels=[16, 16, 8, 8], head="bins", bins=8)
    model = build_colorizer(cfg).eval()
    model.prior.copy_(torch.linspace(1, 2, 64) / torch.linspace(1, 2, 64).sum())
    meta = {"stage": "colorize", "image_size": 32, "colorizer": {**cfg.__dict__, "pretrained": None}}
    export_weights({"color_G": model}, tmp_path, meta)
    loaded = load_pipeline([tmp_path]).networks["colorizer"]
    gray = torch.rand(1, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded.prior, model.prior)
        assert torch.allclose(loaded.chroma(gray), model.chroma(gray))
