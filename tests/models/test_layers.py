"""The fast MAT building blocks against their references: folded gains and biases, the FIR op's hand-written
(twice differentiable) adjoint, the non-fused modulated convolution for batches, the channels-last layout."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import fixed_dropout
from torch.autograd import gradcheck, gradgradcheck

from restoration.models import mat as mat_module
from restoration.models.layers import (
    Conv2dLayer,
    FullyConnectedLayer,
    ModulatedConv2d,
    StyleConv,
    _fir,
    activate,
    fir_filter,
    resample_conv,
)
from restoration.models.mat import MATConfig, build_discriminator, build_generator


@pytest.mark.parametrize(
    ("up", "down", "pad"),
    [(1, 1, (1, 2, 1, 2)), (1, 2, (1, 1, 1, 1)), (2, 1, (2, 1, 2, 1)), (1, 1, (-1, 1, 0, 2)), (2, 2, (1, 1, 1, 1))],
)
def test_fir_filter_gradients_and_second_gradients_are_exact(up, down, pad):
    torch.manual_seed(0)
    f = torch.rand(4, 4, dtype=torch.double)  # not symmetric: the adjoint must flip it
    x = torch.randn(2, 3, 5, 6, dtype=torch.double, requires_grad=True)
    fn = lambda t: fir_filter(t, f, up=up, down=down, pad=pad, gain=up * up)  # noqa: E731
    assert gradcheck(fn, (x,))
    assert gradgradcheck(fn, (x,))
    assert torch.equal(fn(x), _fir(x, f, up, down, pad, up * up, False))


def reference_conv_layer(layer: Conv2dLayer, x, gain=1.0):
    """What the official Conv2dLayer computes: conv with the equalised weight, then bias_act."""
    w = layer.weight * layer.weight_gain
    y = resample_conv(x, w, layer.resample_filter, up=layer.up, down=layer.down, padding=layer.padding)
    return activate(y, layer.bias, layer.activation, gain=gain)


@pytest.mark.parametrize(("up", "down", "k"), [(1, 1, 3), (1, 2, 3), (2, 1, 3), (1, 2, 1), (1, 1, 1)])
@pytest.mark.parametrize("activation", ["lrelu", "linear"])
def test_conv_layer_with_folded_gains_equals_the_reference(up, down, k, activation):
    torch.manual_seed(0)
    layer = Conv2dLayer(5, 7, k, activation=activation, up=up, down=down).double()
    torch.nn.init.normal_(layer.bias)
    x = torch.randn(2, 5, 8, 8, dtype=torch.double)
    for gain in (1.0, math.sqrt(0.5)):
        torch.testing.assert_close(layer(x, gain=gain), reference_conv_layer(layer, x, gain), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("activation", "lr"), [("lrelu", 0.01), ("linear", 1.0), ("lrelu", 1.0)])
def test_fully_connected_layer_with_folded_gains_equals_the_reference(activation, lr):
    torch.manual_seed(0)
    fc = FullyConnectedLayer(6, 4, activation=activation, lr_multiplier=lr, bias_init=0.3).double()
    x = torch.randn(3, 5, 6, dtype=torch.double)
    ref = activate(F.linear(x, fc.weight * fc.weight_gain), fc.bias * fc.bias_gain, activation, dim=2)
    torch.testing.assert_close(fc(x), ref, rtol=1e-12, atol=1e-12)


def reference_modulated(conv: ModulatedConv2d, x, style):
    """MAT's form: per-sample weights, demodulated, one group per sample."""
    B, C, H, W = x.shape
    s = conv.affine(style).view(B, 1, C, 1, 1)
    weight = conv.weight * conv.weight_gain * s
    if conv.demodulate:
        weight = weight * (weight.pow(2).sum(dim=[2, 3, 4]) + 1e-8).rsqrt().view(B, -1, 1, 1, 1)
    weight = weight.reshape(-1, C, conv.kernel_size, conv.kernel_size)
    y = resample_conv(x.reshape(1, B * C, H, W), weight, conv.resample_filter, up=conv.up, padding=conv.padding,
                      groups=B)  # fmt: skip
    return y.reshape(B, -1, *y.shape[2:])


@pytest.mark.parametrize(("up", "k", "demodulate"), [(1, 3, True), (2, 3, True), (1, 1, False)])
@pytest.mark.parametrize("batch", [1, 3])
def test_modulated_conv_fused_and_batched_forms_equal_the_reference(up, k, demodulate, batch):
    torch.manual_seed(0)
    conv = ModulatedConv2d(4, 6, k, 10, demodulate=demodulate, up=up).double()
    x, style = torch.randn(batch, 4, 8, 8, dtype=torch.double), torch.randn(batch, 10, dtype=torch.double)
    bias = torch.randn(6, dtype=torch.double)
    ref = reference_modulated(conv, x, style)
    torch.testing.assert_close(conv(x, style), ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(conv(x, style, gain=1.5, bias=bias), ref * 1.5 + bias.view(1, -1, 1, 1))


def test_style_conv_equals_conv_noise_bias_then_lrelu_times_sqrt2():
    torch.manual_seed(0)
    layer = StyleConv(4, 6, 10, 8).double()
    torch.nn.init.normal_(layer.bias)
    layer.noise_strength.data.fill_(0.7)
    x, style = torch.randn(2, 4, 8, 8, dtype=torch.double), torch.randn(2, 10, dtype=torch.double)
    y = reference_modulated(layer.conv, x, style) + layer.noise_const * layer.noise_strength
    torch.testing.assert_close(layer(x, style, noise_mode="const"), activate(y, layer.bias, "lrelu"))


def test_a_batch_computes_what_its_samples_compute_alone(monkeypatch):
    """The batched (non-fused) modulation path against the one-sample path the golden fixture checks."""
    torch.manual_seed(0)
    G = build_generator(MATConfig(preset="tiny")).eval()
    D = build_discriminator(MATConfig(preset="tiny"))
    img = torch.rand(3, 3, 64, 64) * 2 - 1
    known = torch.ones(3, 1, 64, 64)
    known[:, :, 10:40, 16:50] = 0
    z = torch.randn(3, 32)
    batch_maps = {}

    def keep(shape, like, generator):  # one map per sample, shared by the batched and the single calls
        full = batch_maps.setdefault(shape[1:], torch.bernoulli(torch.full((3, *shape[1:]), 0.5)))
        return full[: shape[0]] if shape[0] == 3 else full[keep.index : keep.index + 1]

    monkeypatch.setattr(mat_module, "bernoulli_keep", keep)
    with torch.no_grad():
        keep.index = 0
        together = G(img, known, z, None, noise_mode="const")
        alone = []
        for i in range(3):
            keep.index = i
            alone.append(G(img[i : i + 1], known[i : i + 1], z[i : i + 1], None, noise_mode="const"))
    torch.testing.assert_close(together, torch.cat(alone), rtol=1e-4, atol=1e-4)  # fp32 rounding, another sum order
    assert D(together, known, together, None)[0].shape == (3, 1)


def test_convolutions_see_the_layout_of_their_device(monkeypatch):
    """The standard layout on CPUs (channels-last is the GPU's: tests/test_gpu.py), kept end to end, so no
    convolution pays for a conversion."""
    fixed_dropout(monkeypatch)
    G = build_generator(MATConfig(preset="tiny"))
    D = build_discriminator(MATConfig(preset="tiny"))
    seen = []

    def hook(module, args):
        x = args[0]
        if x.shape[1] > 4 and x.shape[-1] > 4:  # D's last 4x4 conv after the minibatch-std concat costs nothing
            seen.append(x.is_contiguous())

    for net in (G, D):
        for m in net.modules():
            if isinstance(m, Conv2dLayer | ModulatedConv2d):
                m.register_forward_pre_hook(hook)
    img, known = torch.rand(2, 3, 64, 64), torch.ones(2, 1, 64, 64)
    known[:, :, 8:30, 8:30] = 0
    out, stg1 = G(img, known, torch.randn(2, 32), None, return_stg1=True)
    D(out, known, stg1, None)
    assert len(seen) > 30
    assert all(seen), f"{seen.count(False)} of {len(seen)} convolutions got another layout"
