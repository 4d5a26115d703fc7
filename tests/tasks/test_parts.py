"""A compiled discriminator still gets its lazy R1 step: the double backward runs on the same network uncompiled."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from restoration.losses.adversarial import r1_penalty
from restoration.tasks.parts import without_compile


def penalty_grads(D: nn.Module, real: torch.Tensor) -> list[torch.Tensor]:
    real = real.detach().requires_grad_(True)
    for p in D.parameters():
        p.grad = None
    r1_penalty(D(real), real).backward()
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in D.parameters()]  # a bias: no R1 grad


def test_r1_runs_on_the_uncompiled_network_with_the_same_parameters():
    torch.manual_seed(0)
    D = nn.Sequential(nn.Conv2d(3, 4, 3), nn.LeakyReLU(0.2), nn.Flatten(), nn.LazyLinear(1))
    real = torch.randn(2, 3, 8, 8)
    D(real)  # materialise the lazy layer
    compiled = torch.compile(D, backend="aot_eager")  # aot_autograd, like inductor, has no double backward
    with pytest.raises(RuntimeError, match="double backward"):
        penalty_grads(compiled, real)
    eager = without_compile(compiled)
    assert eager is D
    assert without_compile(D) is D
    want = penalty_grads(D, real)
    got = penalty_grads(eager, real)
    assert all(torch.equal(a, b) for a, b in zip(got, want))
