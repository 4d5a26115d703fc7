"""The one inference recipe and its settings: MAT fills the lost pixels of a gray image (the known pixels stay the
input's), and the settings a pipeline restores with are one immutable value passed per call.

`Pipeline` (validation during training, `restoration-predict`, the MLflow model, the demo and the quality study)
restores through `inpaint_gray`, and `choose_settings` is the one rule that picks a model's default settings from
scores on its val split, so the score seen at the end of training is the score of the computation a user runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from restoration.models.layers import Generators
from restoration.models.mat import INFERENCE_TRUNCATION, mat_inputs, mat_output_to_luma
from restoration.precision import widen

InpaintMode = Literal["tile", "resize", "fill"]
ColorMode = Literal["full", "resize"]
Precision = Literal["fp32", "bf16"]
INPAINT_MODES: tuple[InpaintMode, ...] = ("tile", "resize", "fill")
COLOR_MODES: tuple[ColorMode, ...] = ("full", "resize")
RECORDED = (
    "inpaint_mode",
    "color_mode",
    "chroma_scale",
    "chroma_floor",
    "chroma_flip",
)  # what a model's pipeline.json keeps as its defaults
INPAINT_CANDIDATES: tuple[InpaintMode, ...] = ("tile", "fill")  # `tile` first: it is kept on a tie
CHROMA_SCALES = (1.0, 0.75, 0.5, 0.25)  # 1 first: full color is kept on a tie
CHROMA_SCALE_MAX = 3.0  # beyond it most pixels are at the gamut's edge: more only flattens saturation
CHROMA_FLOORS = (0.0, 0.01, 0.02, 0.04)  # 0 first: the colorizer's own chroma is kept on a tie
CHROMA_FLOOR_MAX = 0.25  # a Cb/Cr offset of 0.25 is near the gamut's edge for mid grays
PER_IMAGE = "per_image"  # a candidate's scores: each val image's contest score by key (for `_better_inpainter`)
VS_FILL = "vs_fill_lower"  # what `_better_inpainter` records: a network mode's lower bound of its gain over the fill
VS_NO_FLOOR = "vs_no_floor_lower"  # what the floor round records: a floor's lower bound of its gain over none


_FLOATS = ("chroma_scale", "chroma_floor")


@dataclass(frozen=True)
class InferenceSettings:
    """How a pipeline restores an image; a value, never shared mutable state (one MLflow request's truncation
    cannot leak into the next).

    - `inpaint_mode`: `tile` (MAT window by window), `resize` (MAT on the canvas resized to one window, its fill
      upsampled into the hole), `fill` (no network: the biharmonic fill of the gray);
    - `color_mode`: `full` (colorizer on the whole canvas) or `resize` (chroma at the colorizer's training size,
      upsampled under the full-resolution luma);
    - `chroma_scale` in [0, 3]: the colorizer's chroma times this (below 1 less saturated, above 1 more, the hue
      kept; each pixel's chroma is fitted into the RGB gamut, so its luma stays the input's);
    - `chroma_floor` in [0, 0.25]: each pixel's chroma (its Cb/Cr offset, after the scale) raised to at least this,
      the hue kept, so that a faint hue survives the 8-bit rounding the contest's C sees;
    - `chroma_flip`: the chroma averaged with that of the mirrored image (test-time augmentation: twice the
      colorizer's work; colors a mirror-symmetric guess where the two views disagree);
    - `truncation_psi`: MAT's style, 0 = the mean style (best contest score), 1 = sampled;
    - `precision`: `bf16` runs the networks under bf16 autocast (weights stay fp32).
    """

    inpaint_mode: InpaintMode = "tile"
    color_mode: ColorMode = "resize"
    chroma_scale: float = 1.0
    chroma_floor: float = 0.0
    chroma_flip: bool = False
    truncation_psi: float = INFERENCE_TRUNCATION
    precision: Precision = "fp32"

    def __post_init__(self) -> None:
        if self.inpaint_mode not in INPAINT_MODES:
            raise ValueError(f"inpaint mode {self.inpaint_mode!r}: expected one of {', '.join(INPAINT_MODES)}")
        if self.color_mode not in COLOR_MODES:
            raise ValueError(f"color mode {self.color_mode!r}: expected one of {', '.join(COLOR_MODES)}")
        if not 0.0 <= self.chroma_scale <= CHROMA_SCALE_MAX:
            raise ValueError(f"chroma scale {self.chroma_scale}: expected a number in [0, {CHROMA_SCALE_MAX:g}]")
        if not 0.0 <= self.chroma_floor <= CHROMA_FLOOR_MAX:
            raise ValueError(f"chroma floor {self.chroma_floor}: expected a number in [0, {CHROMA_FLOOR_MAX:g}]")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision {self.precision!r}: expected fp32 or bf16")

    def but(self, **changes: Any) -> InferenceSettings:
        """A copy with the given fields changed; a field given as None keeps its value (an unset command-line
        flag)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def bf16(self) -> bool:
        return self.precision == "bf16"

    def label(self) -> str:
        """How a setting is named in tables, logs and MLflow: `fill`, `fill, chroma x0.75`, `tile, color full`."""
        parts = [self.inpaint_mode]
        if self.color_mode != "resize":
            parts.append(f"color {self.color_mode}")
        if self.chroma_scale != 1:
            parts.append(f"chroma x{self.chroma_scale:g}")
        if self.chroma_floor:
            parts.append(f"chroma floor {self.chroma_floor:g}")
        if self.chroma_flip:
            parts.append("flip")
        return ", ".join(parts)

    def recorded(self) -> dict[str, Any]:
        """The part a model keeps as its defaults (`pipeline.json` `inference`)."""
        return {k: getattr(self, k) for k in RECORDED}

    @classmethod
    def from_recorded(cls, recorded: list[dict[str, Any]]) -> InferenceSettings:
        """Defaults from `pipeline.json` `inference` fields: per key, the first that records it."""
        values = {}
        for key in RECORDED:
            found = next((r[key] for r in recorded if r and key in r), None)
            if found is not None:
                values[key] = float(found) if key in _FLOATS else bool(found) if key == "chroma_flip" else found
        return cls(**values)


def paired_lower_bound(new: dict[str, float], old: dict[str, float], level: float = 0.95, draws: int = 2000) -> float:
    """The one-sided `level` lower bound of the mean per-image gain of `new` over `old` (images paired by key), from
    a seeded bootstrap over the images: the same scores always give the same bound."""
    keys = sorted(set(new) & set(old))
    if len(keys) < 2:
        return float("-inf")
    gain = np.array([new[k] - old[k] for k in keys])
    draws_idx = np.random.default_rng(0).integers(0, len(keys), size=(draws, len(keys)))
    return float(np.quantile(gain[draws_idx].mean(axis=1), 1.0 - level))


def _kept_unless_beaten(
    candidates: list[InferenceSettings], results: dict[str, dict], kept: InferenceSettings | None, record_as: str
) -> InferenceSettings:
    """With per-image scores (`PER_IMAGE`), `kept` stays unless another candidate beats it on the val images with a
    paired lower bound above 0 (then the best such candidate by mean); without them, or with no `kept`, the best mean,
    the first candidate on a tie. Each other candidate's bound is recorded in its scores under `record_as` when there
    is one (two or more paired images). Why: on a val split of a few dozen photos a setting that wins by noise can
    lose as much on photos of other sources, and `kept` is the setting every run can fall back on."""
    by_mean = max(candidates, key=lambda c: (results[c.label()]["score"], -candidates.index(c)))
    if kept is None or any(PER_IMAGE not in results[c.label()] for c in candidates):
        return by_mean
    shown = []
    for c in candidates:
        if c is not kept:
            bound = paired_lower_bound(results[c.label()][PER_IMAGE], results[kept.label()][PER_IMAGE])
            if np.isfinite(bound):
                results[c.label()][record_as] = bound
            if bound > 0:
                shown.append(c)
    return max(shown, key=lambda c: results[c.label()]["score"]) if shown else kept


def _better_inpainter(candidates: list[InferenceSettings], results: dict[str, dict]) -> InferenceSettings:
    """The inpaint round's rule: the classical fill is kept unless a network mode beats it beyond noise
    (`_kept_unless_beaten`, its bound recorded as `VS_FILL`). Measured: a network mode that won by +0.005 M on val
    lost -0.010 M on photos of other sources."""
    fill = next((c for c in candidates if c.inpaint_mode == "fill"), None)
    return _kept_unless_beaten(candidates, results, fill, VS_FILL)


def _better_floor(candidates: list[InferenceSettings], results: dict[str, dict]) -> InferenceSettings:
    """The chroma floor round's rule: no floor is kept unless a floor beats it beyond noise (`_kept_unless_beaten`,
    bound recorded as `VS_NO_FLOOR`). Measured: a floor of 0.02 costs the CPU preset C -0.033 on photos of other
    sources, and one demo run chose 0.04 by +0.001 on val."""
    none = next((c for c in candidates if c.chroma_floor == 0), None)
    return _kept_unless_beaten(candidates, results, none, VS_NO_FLOOR)


def choose_settings(
    score: Callable[[InferenceSettings], dict[str, Any]],
    base: InferenceSettings,
    *,
    colorizes: bool,
    inpaint_modes: tuple[InpaintMode, ...] = INPAINT_CANDIDATES,
    color_modes: tuple[ColorMode, ...] = (),
    flips: tuple[bool, ...] = (),
) -> tuple[InferenceSettings, dict[str, dict[str, Any]]]:
    """The settings that score best (contest score, the first candidate on a tie), one field at a time: the inpaint
    mode (MAT, or the hole as the input has it when there is no inpainter, against the classical fill; with
    per-image scores a network mode must beat the fill with a paired lower bound above 0: `_better_inpainter`),
    then the color modes when given (the quality study, whose photos are larger than the training crops), then,
    with a colorizer, the chroma strength, the chroma floor (with per-image scores, a floor must beat none with a
    paired lower bound above 0: `_better_floor`) and, when given, the mirrored-chroma average (`flips`).
    `score` restores the val split with a setting and returns its mean scores (and, optionally, `PER_IMAGE`: each
    image's contest score by key); returns (chosen, scores per label). Training and the quality study choose with this.

    Why chroma is chosen: S and M compare RGB channels with the truth, so an uncertain colorizer's wrong saturation
    costs SSIM, while C compares hue histograms, which a smaller chroma keeps."""
    results: dict[str, dict[str, Any]] = {}
    chosen = base.but(chroma_scale=1.0, chroma_floor=0.0)
    rounds = (
        ("inpaint_mode", inpaint_modes), ("color_mode", color_modes), ("chroma_scale", CHROMA_SCALES),
        ("chroma_floor", CHROMA_FLOORS), ("chroma_flip", flips),
    )  # fmt: skip
    for field, values in rounds:
        if field in ("chroma_scale", "chroma_floor", "chroma_flip") and not colorizes:
            continue
        candidates = [chosen.but(**{field: value}) for value in values]
        for candidate in candidates:
            if candidate.label() not in results:
                results[candidate.label()] = score(candidate)
        if field == "inpaint_mode" and candidates:
            chosen = _better_inpainter(candidates, results)
        elif field == "chroma_floor" and candidates:
            chosen = _better_floor(candidates, results)
        elif candidates:
            chosen = max(candidates, key=lambda c: (results[c.label()]["score"], -candidates.index(c)))
    return chosen, results


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
    generator: Generators = None,
) -> Tensor:
    """(B, 1, H, W) gray in [-1, 1] with its known mask (1 = known), H = W = MAT's window -> the composite gray.

    z and MAT's dropout are drawn from `generator` (one per sample: an image restores the same whatever else is in
    its batch) and MAT's noise is constant, so a seeded call is reproducible."""
    masked, z, c = mat_inputs(gray_in, known, G.z_dim, generator)
    out = G(masked, known, z, c, truncation_psi=truncation_psi, noise_mode="const", generator=generator)
    return composite(known, gray_in, mat_output_to_luma(widen(out)))
