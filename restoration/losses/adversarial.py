"""GAN losses as tiny pure functions (StyleGAN2 / rosinality style): logistic, hinge, and the R1 penalty."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from restoration.precision import widen


def d_logistic_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """softplus(-D(x)) + softplus(D(G(z))): BCE with logits, real 1 and fake 0."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_nonsaturating_loss(fake_logits: Tensor) -> Tensor:
    """softplus(-D(G(z))): the generator's non-saturating logistic loss."""
    return F.softplus(-fake_logits).mean()


def d_hinge_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def g_hinge_loss(fake_logits: Tensor) -> Tensor:
    return -fake_logits.mean()


def r1_penalty(real_logits: Tensor, real_inputs: Tensor) -> Tensor:
    """Mean over the batch of ||dD(x)/dx||^2 (summed over C, H, W), computed in fp32.

    `real_inputs` must require grad and be what `real_logits` was computed from; the graph is kept so the penalty
    can be backpropagated (the caller scales it by gamma / 2 and, for lazy R1, by the interval).
    """
    (grad,) = torch.autograd.grad(widen(real_logits).sum(), real_inputs, create_graph=True)
    return widen(grad).square().flatten(1).sum(dim=1).mean()
