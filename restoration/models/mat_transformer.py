"""The transformer body of MAT's first stage, one stage at a time (Li et al., CVPR 2022, Sec. 3.2).

What differs from a Swin stage: no LayerNorm and no residual adds inside a block (the attention output is
concatenated with the block input and fused by an FC, which the paper found trains more stably with large holes),
mask-aware window attention (`restoration.models.attention`), token-grid resampling by partial convolutions, and a
3x3 partial conv + the stage input at the end of each stage. Parameter names follow the official checkpoints.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from restoration.models.attention import WindowAttention, shifted_window_mask, window_partition, window_reverse
from restoration.models.layers import FullyConnectedLayer, PartialConv2d, preferred_format


def feature2token(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, H*W, C) as a transposed *view* (the official memory layout, which the stage-1 dropout
    draw depends on)."""
    B, C, H, W = x.shape
    return x.view(B, C, H * W).transpose(1, 2)


def token2feature(x: Tensor, size: tuple[int, int]) -> Tensor:
    """(B, H*W, C) -> (B, C, H, W) in the convolutions' layout for the device (`preferred_format`): contiguous
    tokens already are channels-last, the standard layout costs a copy (as in MAT)."""
    feat = rearrange(x, "b (h w) c -> b c h w", h=size[0], w=size[1])
    return feat.contiguous(memory_format=preferred_format(feat))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = FullyConnectedLayer(dim, hidden, activation="lrelu")
        self.fc2 = FullyConnectedLayer(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.fc1(x))


class SwinTransformerBlock(nn.Module):
    """MAT's adjusted transformer block: no LayerNorm and no residual adds; the attention output is concatenated
    with the block input and fused by an FC (`fuse`), then an MLP. Windows shift on odd blocks."""

    def __init__(self, dim: int, input_resolution: int, num_heads: int, window: int, shift: int) -> None:
        super().__init__()
        if input_resolution <= window:
            window, shift = input_resolution, 0
        self.window, self.shift = window, shift
        self.attn = WindowAttention(dim, num_heads)
        self.fuse = FullyConnectedLayer(dim * 2, dim, activation="lrelu")
        self.mlp = Mlp(dim, dim * 2)
        self._shift_masks: dict[tuple, Tensor] = {}

    def shift_mask(self, H: int, W: int, device: torch.device) -> Tensor | None:
        if self.shift == 0:
            return None
        key = (H, W, str(device))
        if key not in self._shift_masks:
            self._shift_masks[key] = shifted_window_mask(H, W, self.window, self.shift, device)
        return self._shift_masks[key]

    def forward(self, x: Tensor, size: tuple[int, int], mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """x: (B, L, C) tokens; mask: (B, L, 1) known tokens or None."""
        H, W = size
        B, L, C = x.shape
        shortcut = x
        grid = x.view(B, H, W, C)
        grid_mask = mask.view(B, H, W, 1) if mask is not None else None
        if self.shift:
            grid = torch.roll(grid, shifts=(-self.shift, -self.shift), dims=(1, 2))
            if grid_mask is not None:
                grid_mask = torch.roll(grid_mask, shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = window_partition(grid, self.window)  # (B * nW, N, C)
        mask_windows = window_partition(grid_mask, self.window) if grid_mask is not None else None
        out, mask_windows = self.attn(windows, mask_windows, self.shift_mask(H, W, x.device))
        grid = window_reverse(out, self.window, H, W)  # (B, H, W, C)
        if mask_windows is not None:
            grid_mask = window_reverse(mask_windows, self.window, H, W)
        if self.shift:
            grid = torch.roll(grid, shifts=(self.shift, self.shift), dims=(1, 2))
            if grid_mask is not None:
                grid_mask = torch.roll(grid_mask, shifts=(self.shift, self.shift), dims=(1, 2))
        x = grid.reshape(B, L, C)
        mask = grid_mask.reshape(B, L, 1) if grid_mask is not None else None
        x = self.fuse(torch.cat([shortcut, x], dim=-1))
        return self.mlp(x), mask


class PatchResample(nn.Module):
    """Token-grid down- (PatchMerging) or up-sampling (PatchUpsampling) by a 3x3 partial conv."""

    def __init__(self, dim: int, *, up: int = 1, down: int = 1) -> None:
        super().__init__()
        self.conv = PartialConv2d(dim, dim, 3, up=up, down=down)
        self.factor = up / down

    def forward(self, x: Tensor, size: tuple[int, int], mask: Tensor | None):
        feat = token2feature(x, size)
        feat_mask = token2feature(mask, size) if mask is not None else None
        feat, feat_mask = self.conv(feat, feat_mask)
        size = (int(size[0] * self.factor), int(size[1] * self.factor))
        return feature2token(feat), size, feature2token(feat_mask) if feat_mask is not None else None


class BasicLayer(nn.Module):
    """One transformer stage: optional resampling (named `downsample` even when it upsamples, as in MAT) ->
    blocks -> 3x3 partial conv -> + the stage input."""

    def __init__(
        self, dim: int, resolution: int, depth: int, num_heads: int, window: int, resample: PatchResample | None
    ) -> None:
        super().__init__()
        self.downsample = resample
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(dim, resolution, num_heads, window, 0 if i % 2 == 0 else window // 2)
            for i in range(depth)
        )
        self.conv = PartialConv2d(dim, dim, 3)

    def forward(self, x: Tensor, size: tuple[int, int], mask: Tensor | None):
        if self.downsample is not None:
            x, size, mask = self.downsample(x, size, mask)
        identity = x
        for block in self.blocks:
            x, mask = block(x, size, mask)
        feat_mask = token2feature(mask, size) if mask is not None else None
        feat, feat_mask = self.conv(token2feature(x, size), feat_mask)
        x = feature2token(feat) + identity
        return x, size, feature2token(feat_mask) if feat_mask is not None else None
