"""CUDA-only checks (marked `gpu`, skipped without a GPU; `benchmarks/gpu_check.py` runs them with `pytest -m gpu`).

The bf16 train_step of every stage (R1 in fp32) and the bf16 pipeline run on CUDA through the device-parametrised
tests of `tests/test_mixed_precision.py`; here: the SDPA kernels against the explicit softmax with MAT's masks,
CUDA against CPU on the official architecture, activation checkpointing, and bf16 against fp32.
"""

from __future__ import annotations

import pytest
import torch
from conftest import fixed_dropout

from restoration.models.attention import MASK_PENALTY, WindowAttention, explicit_attention, fused_attention
from restoration.models.mat import MATConfig, build_generator

pytestmark = pytest.mark.gpu
CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def strict_fp32():
    """fp32 means fp32 in these comparisons (TF32 would differ from the CPU by ~1e-3)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def mat_bias(windows: int, n: int, device, known_fraction: float = 0.5, seed: int = 0) -> torch.Tensor:
    """MAT's additive bias: -100 on lost keys (some windows fully lost) plus a shifted-window region mask."""
    g = torch.Generator().manual_seed(seed)
    lost = torch.rand(windows, 1, 1, n, generator=g) > known_fraction
    lost[0] = True  # a window without any known token attends uniformly (no NaN)
    region = torch.where(torch.rand(1, 1, n, n, generator=g) < 0.2, MASK_PENALTY, 0.0)
    return (torch.where(lost, MASK_PENALTY, 0.0) + region).to(device)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("windows", "n"), [(128, 64), (8, 256)])  # MAT 512: 8x8 windows of 64x64, 16x16 of 32x32
def test_sdpa_equals_the_explicit_softmax_with_mat_masks(dtype, windows, n):
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(windows, 6, n, 30, device=CUDA, dtype=dtype, generator=g, requires_grad=True)
               for _ in range(3))  # fmt: skip
    bias = mat_bias(windows, n, CUDA)
    outs, grads = [], []
    for fn in (fused_attention, explicit_attention):
        out = fn(q, k, v, bias, 30**-0.5)
        (out.float() * torch.linspace(-1, 1, out.numel(), device=CUDA).view_as(out)).sum().backward()
        outs.append(out.detach().float())
        grads.append([t.grad.float().clone() for t in (q, k, v)])
        for t in (q, k, v):
            t.grad = None
    tol = {"atol": 5e-2, "rtol": 5e-2} if dtype == torch.bfloat16 else {"atol": 1e-5, "rtol": 1e-4}
    torch.testing.assert_close(outs[0], outs[1], **tol)
    assert torch.isfinite(outs[0]).all()
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, **tol)


def test_window_attention_module_fused_and_explicit_agree_under_bf16_autocast():
    torch.manual_seed(0)
    attn = WindowAttention(180, 6).to(CUDA)
    x = torch.randn(64, 64, 180, device=CUDA)
    mask = (torch.rand(64, 64, 1, device=CUDA) > 0.6).float()
    outs = []
    for fused in (True, False):
        attn.use_fused = fused
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out, new_mask = attn(x, mask)
        assert out.dtype == torch.bfloat16
        outs.append(out.float())
    torch.testing.assert_close(outs[0], outs[1], atol=3e-2, rtol=3e-2)
    assert torch.equal(new_mask, mask.amax(dim=1, keepdim=True).expand_as(mask))


def official_inputs(res: int, batch: int = 2):
    torch.manual_seed(0)
    img = torch.rand(batch, 3, res, res) * 2 - 1
    known = torch.ones(batch, 1, res, res)
    known[:, :, res // 5 : res // 2, res // 4 : 3 * res // 4] = 0
    return img, known, torch.randn(batch, 512), torch.zeros(batch, 0)


def test_official_generator_on_cuda_equals_cpu(monkeypatch):
    fixed_dropout(monkeypatch)
    torch.manual_seed(0)
    G = build_generator(MATConfig(preset="official256"))
    inputs = official_inputs(256)
    with torch.no_grad():
        ref = G(*inputs, noise_mode="const")
        out = G.to(CUDA)(*(t.to(CUDA) for t in inputs), noise_mode="const").cpu()
    # the golden-fixture tolerance: 1e-4 + 1e-5 * max|ref|
    assert (out - ref).abs().max() <= 1e-4 + 1e-5 * ref.abs().max()


def test_activation_checkpointing_changes_nothing_on_cuda(monkeypatch):
    fixed_dropout(monkeypatch)
    inputs = [t.to(CUDA) for t in official_inputs(256)]
    results = []
    for flag in (False, True):
        torch.manual_seed(0)
        G = build_generator(MATConfig(preset="official256", checkpointing=flag)).to(CUDA)
        out = G(*inputs, noise_mode="const")
        out.square().mean().backward()
        grad = G.synthesis.first_stage.tran[1].blocks[0].attn.q.weight.grad
        results.append((out.detach(), grad.clone()))
    torch.testing.assert_close(results[0][0], results[1][0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(results[0][1], results[1][1], atol=1e-5, rtol=1e-4)


def test_bf16_generator_stays_close_to_fp32_at_512(monkeypatch):
    fixed_dropout(monkeypatch)
    torch.manual_seed(0)
    G = build_generator(MATConfig(preset="official512")).to(CUDA)
    inputs = [t.to(CUDA) for t in official_inputs(512, batch=1)]
    with torch.no_grad():
        ref = G(*inputs, noise_mode="const")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = G(*inputs, noise_mode="const")
    assert out.dtype == torch.float32  # the composite with the fp32 input
    assert torch.isfinite(out).all()
    lost = inputs[1] == 0
    assert (out - ref).abs()[lost.expand_as(out)].mean() < 0.1 * ref.abs()[lost.expand_as(ref)].mean() + 1e-3


def test_activations_are_channels_last_on_cuda():
    """cuDNN's tensor-core convolutions work in NHWC: MAT keeps that layout end to end on a GPU."""
    from restoration.models.layers import Conv2dLayer, ModulatedConv2d
    from restoration.models.mat import build_discriminator

    G = build_generator(MATConfig(preset="official256")).to(CUDA)
    D = build_discriminator(MATConfig(preset="official256")).to(CUDA)
    seen = []
    for net in (G, D):
        for m in net.modules():
            if isinstance(m, Conv2dLayer | ModulatedConv2d):
                m.register_forward_pre_hook(
                    lambda mod, args: (
                        seen.append(args[0].is_contiguous(memory_format=torch.channels_last))
                        if args[0].shape[-1] > 4
                        else None
                    )  # D's last 4x4 conv follows a concat
                )
    img, known, z, c = (t.to(CUDA) for t in official_inputs(256))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out, stg1 = G(img, known, z, c, return_stg1=True)
        D(out, known, stg1, c)
    assert all(seen)
