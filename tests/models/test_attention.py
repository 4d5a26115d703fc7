"""Window attention: the fused SDPA path equals the explicit softmax reference, -100 semantics, mask update."""

from __future__ import annotations

import torch

from restoration.models.attention import (
    MASK_PENALTY,
    WindowAttention,
    explicit_attention,
    fused_attention,
    shifted_window_mask,
    window_partition,
    window_reverse,
)


def test_fused_equals_explicit_with_masks_including_fully_lost_windows():
    torch.manual_seed(0)
    q, k, v = (torch.randn(6, 3, 16, 8) for _ in range(3))
    bias = torch.zeros(6, 1, 16, 16)
    bias[0, ..., :5] = MASK_PENALTY  # some keys lost
    bias[1] = MASK_PENALTY  # a fully lost window: a finite shift of every logit, so no NaN (unlike -inf)
    ref = explicit_attention(q, k, v, bias, 8**-0.5)
    out = fused_attention(q, k, v, bias, 8**-0.5)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    unmasked = explicit_attention(q[1:2], k[1:2], v[1:2], torch.zeros(1, 1, 16, 16), 8**-0.5)[0]
    torch.testing.assert_close(out[1], unmasked, atol=1e-5, rtol=1e-5)


def test_window_attention_module_paths_agree_and_update_the_mask():
    torch.manual_seed(1)
    attn = WindowAttention(dim=12, num_heads=3)
    x = torch.randn(4, 16, 12)
    mask = torch.zeros(4, 16, 1)
    mask[0, :3] = 1  # window 0 has known tokens, the others none
    out_fused, new_mask = attn(x, mask, shifted_window_mask(8, 8, 4, 2))
    attn.use_fused = False
    out_ref, _ = attn(x, mask, shifted_window_mask(8, 8, 4, 2))
    torch.testing.assert_close(out_fused, out_ref, atol=1e-5, rtol=1e-5)
    assert new_mask[0].min() == 1  # a window with any known token becomes known
    assert new_mask[1:].max() == 0


def test_bf16_autocast_runs_and_stays_finite():
    attn = WindowAttention(dim=12, num_heads=3)
    x = torch.randn(2, 16, 12)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = attn(x, torch.zeros(2, 16, 1), None)
    assert torch.isfinite(out.float()).all()


def test_window_partition_round_trip_and_shift_mask():
    x = torch.randn(2, 8, 8, 5)
    assert torch.equal(window_reverse(window_partition(x, 4), 4, 8, 8), x)
    mask = shifted_window_mask(8, 8, 4, 2)
    assert mask.shape == (4, 16, 16)
    assert set(mask.unique().tolist()) <= {0.0, MASK_PENALTY}
    assert mask[0].eq(0).all()  # the top-left window is one region
    assert torch.equal(mask, mask.transpose(1, 2))
