"""The exponential moving average of a generator (StyleGAN's G_ema): what evaluation, checkpoints and exports use."""

from __future__ import annotations

import copy

import torch
from torch import nn

from restoration.optim import requires_grad


def make_ema(module: nn.Module) -> nn.Module:
    """A frozen copy of `module` in eval mode that `ema_update` keeps as a moving average."""
    ema = copy.deepcopy(module).eval()
    requires_grad(ema, False)
    return ema


@torch.no_grad()
def ema_update(ema: nn.Module, module: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * module for parameters; buffers (e.g. MAT's w_avg) are copied."""
    for e, p in zip(ema.parameters(), module.parameters()):
        e.lerp_(p.detach().to(e.dtype), 1.0 - decay)
    for e, b in zip(ema.buffers(), module.buffers()):
        e.copy_(b)


def ema_decay_from_half_life(half_life_images: float, images_per_step: int) -> float:
    """StyleGAN's EMA: the average's weight halves every `half_life_images` images."""
    return 0.5 ** (images_per_step / max(half_life_images, 1e-8))
