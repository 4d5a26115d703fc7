"""Loss weights and GAN settings of every stage: the `loss.*` section of a training config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from torch import Tensor


@dataclass
class LossConfig:
    """Weights default to a recipe that trains from random weights on small data (the demo); the 512 presets
    follow the MAT paper for the inpainter (adversarial + 0.1 perceptual, R1 gamma 10 every 16 steps)."""

    # MAT (inpaint, joint)
    mat_adv: float = 1.0  # non-saturating logistic, both discriminator heads
    mat_l1_hole: float = 1.0  # L1 on the lost pixels' luma; 0 in the pure MAT recipe
    mat_perceptual: float = 0.0  # 0.1 in MAT; needs perceptual_weights
    perceptual_weights: Path | None = None  # local VGG-19 (torchvision layout) weights file
    # terms aligned with the contest score (0 = off, the default, so earlier configs train exactly as before):
    # SSIM of the composite luma over the hole (M, `reconstruction.hole_ssim_loss`) and over the whole image (S)
    mat_hole_ssim: float = 0.0
    mat_ssim: float = 0.0
    mat_truncation: float = 0.5  # MAT trains with truncation psi 0.5 (w pulled halfway to w_avg)
    r1_gamma: float = 10.0
    r1_every: int = 16
    # colorizer (colorize, joint)
    color_gan: Literal["logistic", "hinge"] = "logistic"
    color_adv: float = 0.1
    chroma_l1: float = 10.0
    ssim: float = 1.0
    hue_hist: float = 1.0
    color_hole_ssim: float = 0.0  # SSIM of the colorized RGB over the hole (M); in joint it reaches MAT too
    chroma_ce: float = 0.0  # `colorizer.head: bins`: rebalanced cross-entropy of the chroma bins (Zhang et al.)
    # joint: how strongly the colorizer's losses reach MAT (through the lost pixels only)
    joint_color_to_mat: float = 1.0
    # gan_baseline (the original notebook: BCE + 100 * L1)
    baseline_l1: float = 100.0
    # detector
    detector_dice: float = 1.0

    def mat_weights(self) -> dict[str, float]:
        """MAT's generator terms (`losses.mat_gan.mat_g_terms`) and their weights, in the order they are summed."""
        return {
            "mat_adv": self.mat_adv,
            "mat_l1": self.mat_l1_hole,
            "mat_hole_ssim": self.mat_hole_ssim,
            "mat_ssim": self.mat_ssim,
            "mat_perceptual": self.mat_perceptual,
        }

    def color_weights(self) -> dict[str, float]:
        """The colorizer's generator terms (`losses.color_gan.color_g_terms`) and their weights, in summing order."""
        return {
            "color_adv": self.color_adv,
            "chroma_l1": self.chroma_l1,
            "ssim": self.ssim,
            "hue_hist": self.hue_hist,
            "color_hole_ssim": self.color_hole_ssim,
            "chroma_ce": self.chroma_ce,
        }

    def __post_init__(self) -> None:
        if self.r1_every < 1:
            raise ValueError(f"loss.r1_every must be >= 1, got {self.r1_every}")
        if self.mat_perceptual > 0 and self.perceptual_weights is None:
            raise ValueError("loss.mat_perceptual > 0 needs loss.perceptual_weights (a local VGG-19 weights file)")


def active(weights: dict[str, float]) -> set[str]:
    """The terms worth computing: those with a positive weight."""
    return {name for name, weight in weights.items() if weight > 0}


def weigh(terms: dict[str, Tensor], weights: dict[str, float]) -> dict[str, Tensor]:
    """Each unweighted term times its weight, in the terms' order (the order they are summed and logged in)."""
    return {name: weights[name] * term for name, term in terms.items()}
