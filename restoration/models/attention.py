"""MAT's multi-head contextual attention over (shifted) windows, with the mask-update rule.

Per window: queries and keys come from L2-normalised tokens, values from the raw tokens; keys of lost tokens get
-100 added to their logits (a *finite* penalty: a window with no known token then attends uniformly instead of
producing NaN), and shifted windows add Swin's -100 region mask. After the block, every token of a window that held
at least one known token becomes known. The fused path is `F.scaled_dot_product_attention` with that additive
mask; `explicit_attention` is the softmax reference the tests compare it with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from restoration.models.layers import FullyConnectedLayer

MASK_PENALTY = -100.0


def window_partition(x: Tensor, window: int) -> Tensor:
    """(B, H, W, C) -> (B * nW, window * window, C), windows in row-major order."""
    return rearrange(x, "b (nh wh) (nw ww) c -> (b nh nw) (wh ww) c", wh=window, ww=window)


def window_reverse(windows: Tensor, window: int, H: int, W: int) -> Tensor:
    """(B * nW, window * window, C) -> (B, H, W, C)."""
    return rearrange(windows, "(b nh nw) (wh ww) c -> b (nh wh) (nw ww) c", nh=H // window, nw=W // window, wh=window)


def shifted_window_mask(H: int, W: int, window: int, shift: int, device: torch.device | None = None) -> Tensor:
    """Swin's region mask for cyclically shifted windows: (nW, N, N) with 0 within a region and -100 across."""
    regions = torch.zeros(1, H, W, 1, device=device)
    bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for hs in bounds:
        for ws in bounds:
            regions[:, hs, ws, :] = label
            label += 1
    ids = window_partition(regions, window).squeeze(-1)  # (nW, N)
    diff = ids.unsqueeze(1) - ids.unsqueeze(2)  # (nW, N, N)
    return torch.zeros_like(diff).masked_fill(diff != 0, MASK_PENALTY)


def explicit_attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor, scale: float) -> Tensor:
    """Reference: softmax(q k^T * scale + bias) v. q, k, v: (B_, h, N, d); bias broadcastable to (B_, h, N, N).
    An fp32 bias keeps the logits and the softmax in fp32 when q, k, v are bf16."""
    logits = (q @ k.transpose(-2, -1)) * scale + bias
    return logits.softmax(dim=-1).to(v.dtype) @ v


def fused_attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor, scale: float) -> Tensor:
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=scale)


class WindowAttention(nn.Module):
    """Mask-aware multi-head attention within windows; parameter names q, k, v, proj as in MAT."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = FullyConnectedLayer(dim, dim)
        self.k = FullyConnectedLayer(dim, dim)
        self.v = FullyConnectedLayer(dim, dim)
        self.proj = FullyConnectedLayer(dim, dim)
        self.use_fused = True

    def forward(
        self, x: Tensor, mask_windows: Tensor | None = None, shift_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """x: (B_, N, C) window tokens; mask_windows: (B_, N, 1) known tokens; shift_mask: (nW, N, N) or None."""
        B_, N, C = x.shape
        normed = F.normalize(x, p=2.0, dim=-1)
        q = rearrange(self.q(normed), "b n (h d) -> b h n d", h=self.num_heads)
        k = rearrange(self.k(normed), "b n (h d) -> b h n d", h=self.num_heads)
        v = rearrange(self.v(x), "b n (h d) -> b h n d", h=self.num_heads)
        bias = torch.zeros(B_, 1, N, N, device=x.device, dtype=q.dtype)
        if shift_mask is not None:
            nW = shift_mask.shape[0]
            bias = bias + shift_mask.repeat(B_ // nW, 1, 1).unsqueeze(1)  # window b_ uses region mask b_ % nW
        if mask_windows is not None:
            key_known = rearrange(mask_windows, "b n 1 -> b 1 1 n")
            bias = bias + torch.where(key_known == 0, MASK_PENALTY, 0.0).to(bias.dtype)
            with torch.no_grad():  # the mask-update rule: a window with any known token becomes fully known
                mask_windows = mask_windows.sum(dim=1, keepdim=True).clamp(0, 1).repeat(1, N, 1)
        attend = fused_attention if self.use_fused else explicit_attention
        out = attend(q, k, v, bias, self.scale)
        return self.proj(rearrange(out, "b h n d -> b n (h d)")), mask_windows
