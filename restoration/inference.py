"""The one inference recipe: MAT fills the lost pixels of a gray image, the known pixels stay the input's.

Used by every stage's `predict` (validation during training) and by `Pipeline` (prediction, evaluation, the MLflow
model), so a score seen in training is the score of the same computation a user runs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from restoration.models.mat import INFERENCE_TRUNCATION, gray_to_mat_input, mat_output_to_luma
from restoration.precision import widen


def composite(known: Tensor, gray_in: Tensor, luma: Tensor) -> Tensor:
    """Known pixels from the input, lost ones from `luma`: (B, 1, H, W)."""
    return known * gray_in + (1.0 - known) * luma


@torch.no_grad()
def inpaint_gray(
    G: nn.Module,
    gray_in: Tensor,
    known: Tensor,
    *,
    truncation_psi: float = INFERENCE_TRUNCATION,
    generator: torch.Generator | None = None,
) -> Tensor:
    """(B, 1, H, W) gray in [-1, 1] with its known mask (1 = known), H = W = MAT's window -> the composite gray.

    z is drawn from `generator` and MAT's noise is constant, so a seeded call is reproducible."""
    masked = gray_to_mat_input(gray_in) * known
    z = torch.randn(known.shape[0], G.z_dim, device=known.device, generator=generator)
    c = torch.zeros(known.shape[0], 0, device=known.device)
    out = G(masked, known, z, c, truncation_psi=truncation_psi, noise_mode="const", generator=generator)
    return composite(known, gray_in, mat_output_to_luma(widen(out)))
