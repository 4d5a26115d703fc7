"""Dice loss on the lost region: the mask detector's overlap term next to its BCE."""

from __future__ import annotations

import torch
from torch import Tensor


def dice_loss(logits: Tensor, known_mask: Tensor, eps: float = 1.0) -> Tensor:
    """1 - Dice on the lost region (the rare class), per image then averaged; `logits` predict `known_mask`."""
    hole_prob = 1.0 - torch.sigmoid(logits)
    hole = 1.0 - known_mask
    inter = (hole_prob * hole).sum(dim=(1, 2, 3))
    union = hole_prob.sum(dim=(1, 2, 3)) + hole.sum(dim=(1, 2, 3))
    return (1.0 - (2 * inter + eps) / (union + eps)).mean()
