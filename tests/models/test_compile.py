"""MAT's layers under torch.compile compute what they compute eagerly. Guards a miscompile met on CPU: inductor fused
`torch.add(bias, linear_out, alpha=gain)` into an `addmm` and dropped `alpha`, so a compiled MAT (`run.compile=true`)
computed bias + y instead of bias + gain * y."""

from __future__ import annotations

import shutil

import pytest
import torch
import torch.nn.functional as F

from restoration.models.layers import Conv2dLayer, FullyConnectedLayer, scaled_add

pytestmark = pytest.mark.skipif(
    shutil.which("c++") is None and shutil.which("g++") is None, reason="torch.compile on CPU needs a C++ compiler"
)


def compiled_matches(fn, *args) -> None:
    torch._dynamo.reset()
    want = fn(*args)
    got = torch.compile(fn)(*args)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_scaled_add_after_a_matrix_product():
    torch.manual_seed(0)
    x, w, b = torch.randn(4, 16), torch.randn(8, 16), torch.randn(8)
    compiled_matches(lambda x, w, b: scaled_add(F.linear(x, w), 0.25, b), x, w, b)


@pytest.mark.parametrize("batch", [1, 64])  # both branches: scale the output (batch 1) or the weight
def test_fully_connected_layer(batch):
    torch.manual_seed(0)
    layer = FullyConnectedLayer(32, 16, activation="lrelu", lr_multiplier=0.01, bias_init=0.5)
    compiled_matches(layer, torch.randn(batch, 32))


def test_conv_layer_with_a_small_output():
    torch.manual_seed(0)
    layer = Conv2dLayer(64, 8, 3, activation="lrelu")  # an output smaller than the weight: scaled after the conv
    compiled_matches(layer, torch.randn(1, 64, 4, 4))
