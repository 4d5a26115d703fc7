"""Small GAN mechanics shared by every task: freezing, EMA, and one guarded optimizer step.

In the style of rosinality/stylegan2-pytorch: plain functions, the step order stays visible in each task.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable

import torch
from accelerate import Accelerator
from torch import nn


def requires_grad(module: nn.Module, flag: bool) -> None:
    """Freeze (False) or unfreeze (True) every parameter of `module`."""
    for p in module.parameters():
        p.requires_grad_(flag)


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


def optimizer_step(
    accelerator: Accelerator,
    optimizer: torch.optim.Optimizer,
    params: Iterable[nn.Parameter],
    max_norm: float,
) -> tuple[torch.Tensor | None, bool]:
    """Clip, then step unless the gradient is non-finite; returns (grad norm, skipped).

    Called after backward inside `accelerator.accumulate`: on accumulation micro-steps nothing happens. The norm is
    computed from DDP-averaged gradients, so every rank sees the same value and skips the same steps (a rank that
    skipped alone would desynchronise the replicas).
    """
    if not accelerator.sync_gradients:
        return None, False
    norm = accelerator.clip_grad_norm_(list(params), max_norm if max_norm > 0 else math.inf)
    norm = torch.as_tensor(norm).detach().float()
    skipped = not bool(torch.isfinite(norm))
    if not skipped:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return norm, skipped
