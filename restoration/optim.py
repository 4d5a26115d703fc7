"""How parameters move: Adam settings, the learning-rate schedule, freezing, and one guarded optimizer step.

The schedule is a pure function of the step, applied before each optimizer step, so there is no scheduler state
to checkpoint and a resumed run continues on exactly the same curve.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch
from accelerate import Accelerator
from torch import nn


@dataclass
class OptimConfig:
    """Adam for generators and discriminators. Defaults follow MAT/StyleGAN2 (betas 0, 0.99)."""

    lr: float = 2e-4
    d_lr: float = 2e-4
    betas: tuple[float, float] = (0.0, 0.99)
    weight_decay: float = 0.0
    grad_clip: float = 10.0  # <= 0 disables clipping (the norm is still checked for non-finite values)
    warmup_steps: int = 0
    schedule: Literal["constant", "cosine"] = "constant"
    min_lr_ratio: float = 0.1  # cosine floor, as a fraction of the base lr
    ema_half_life_images: float = 2000.0  # StyleGAN's ema_kimg in images; 10_000 for MAT at batch 32

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.d_lr <= 0:
            raise ValueError(f"learning rates must be > 0, got lr={self.lr} d_lr={self.d_lr}")


def lr_factor(step: int, max_steps: int, cfg: OptimConfig) -> float:
    """Multiplier of the base lr at `step` (0-based): linear warmup, then constant or cosine to `min_lr_ratio`."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    progress = (step - cfg.warmup_steps) / max(1, max_steps - cfg.warmup_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * cosine


def make_adam(params: Iterable[nn.Parameter], lr: float, cfg: OptimConfig) -> torch.optim.Optimizer:
    optimizer = torch.optim.Adam([p for p in params if p.requires_grad], lr=lr, betas=cfg.betas)
    for group in optimizer.param_groups:
        group["base_lr"] = lr
        group["weight_decay"] = cfg.weight_decay
    return optimizer


def apply_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor


def requires_grad(module: nn.Module, flag: bool) -> None:
    """Freeze (False) or unfreeze (True) every parameter of `module`."""
    for p in module.parameters():
        p.requires_grad_(flag)


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


# -- the exponential moving average of a generator (StyleGAN's G_ema): what evaluation, checkpoints and exports use ----


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
