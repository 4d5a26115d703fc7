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
