"""Classical answers to the contest task, to stand beside every trained score: the anchors.

- `input`: the masked gray input returned unchanged (what doing nothing scores);
- `telea` / `ns`: the gray inpainted on the lost region by OpenCV's `cv2.inpaint` (Telea 2004, fast marching; or
  Navier-Stokes, Bertalmio 2001), radius 5, no color. OpenCV is only a dev dependency: where it is not importable,
  both fall back to scikit-image's biharmonic inpainting (`skimage.restoration.inpaint_biharmonic`, a runtime
  dependency), and `fill_method` says which one ran;
- `true_gray`: L(gt) in three channels, the upper bound for any gray answer (C of a gray answer is ~0.15 on photos
  with a red-ish hue histogram, ~0 elsewhere).

A classical fill is also an inpainting mode of `Pipeline` (`inpaint_mode="fill"`): smooth fills are what the
contest's M (SSIM on the lost pixels) rewards, and a tiny MAT trained from scratch on a CPU paints noisier ones.
The pipeline's fill is the biharmonic one (`PIPELINE_FILL`): on the 40 held-out dev photos at 512 px it scored M
+0.0095 [+0.0000, +0.0196] above Telea (27 of 40 photos; BENCHMARKS.md), it needs no OpenCV, so every machine gives
the same answer, and its cost, a sparse solve over the lost pixels, is capped: a hole of more than
`BIHARMONIC_MAX_LOST` pixels is solved on a box-downscaled copy and the smooth solution upsampled into it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from einops import reduce
from PIL import Image

FillMethod = Literal["telea", "ns", "biharmonic"]
FILL_RADIUS = 5
PIPELINE_FILL: FillMethod = "biharmonic"
BIHARMONIC_MAX_LOST = 1 << 17  # lost pixels solved at full resolution (~1 s); half of a 512 px image
ANCHORS = ("input", "telea", "ns", "true_gray")


def _cv2():
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def fill_method(method: FillMethod = "telea") -> FillMethod:
    """The method that `classical_fill(method=...)` really runs here: OpenCV's when importable, else biharmonic."""
    return method if method == "biharmonic" or _cv2() is not None else "biharmonic"


def classical_fill(gray: np.ndarray, known: np.ndarray, method: FillMethod = "telea") -> np.ndarray:
    """(H, W) uint8 gray + known mask (1 = known) -> (H, W) uint8 with the lost pixels filled from their surroundings;
    known pixels are returned unchanged."""
    gray = np.ascontiguousarray(gray, dtype=np.uint8)
    lost = known == 0
    if not lost.any() or lost.all():
        return gray.copy()
    method = fill_method(method)
    if method == "biharmonic":
        filled = _biharmonic(gray, lost)
    else:
        cv2 = _cv2()
        flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
        filled = cv2.inpaint(gray, lost.astype(np.uint8), FILL_RADIUS, flag)
    return np.where(lost, filled, gray).astype(np.uint8)


def _biharmonic(gray: np.ndarray, lost: np.ndarray) -> np.ndarray:
    """scikit-image's biharmonic fill; above `BIHARMONIC_MAX_LOST` lost pixels (its solve grows faster than the hole:
    22 s for 0.64 Mpx) on a copy box-downscaled by an integer factor, where a pixel is lost if any pixel it covers
    is, and the solution upsampled bicubically (it is smooth, so little is lost)."""
    from skimage.restoration import inpaint_biharmonic

    factor = int(np.ceil(np.sqrt(lost.sum() / BIHARMONIC_MAX_LOST)))
    if factor <= 1:
        filled = inpaint_biharmonic(gray.astype(np.float64) / 255.0, lost)
        return np.clip(np.round(filled * 255.0), 0, 255).astype(np.uint8)
    h, w = gray.shape
    pad = ((0, -h % factor), (0, -w % factor))
    small_gray = reduce(
        np.pad(gray.astype(np.float64), pad, mode="edge"), "(h a) (w b) -> h w", "mean", a=factor, b=factor
    )
    small_lost = reduce(np.pad(lost, pad, mode="edge"), "(h a) (w b) -> h w", "max", a=factor, b=factor)
    small = inpaint_biharmonic(small_gray / 255.0, small_lost).astype(np.float32)
    size = (small.shape[1] * factor, small.shape[0] * factor)
    up = np.asarray(Image.fromarray(small).resize(size, Image.BICUBIC))[:h, :w]
    return np.clip(np.round(up * 255.0), 0, 255).astype(np.uint8)


def gray_rgb(gray: np.ndarray) -> np.ndarray:
    """(H, W) uint8 -> (H, W, 3) uint8, the gray in all three channels."""
    return np.repeat(gray[..., None], 3, axis=2)


def anchor_rgb(name: str, gray_in: np.ndarray, known: np.ndarray, gray_gt: np.ndarray | None = None) -> np.ndarray:
    """One anchor's answer as (H, W, 3) uint8: `input`, `telea`, `ns` or `true_gray` (the last needs `gray_gt`)."""
    if name == "input":
        return gray_rgb(gray_in)
    if name in ("telea", "ns", "biharmonic"):
        return gray_rgb(classical_fill(gray_in, known, name))  # type: ignore[arg-type]
    if name == "true_gray":
        if gray_gt is None:
            raise ValueError("the true_gray anchor needs the ground truth's gray")
        return gray_rgb(gray_gt)
    raise ValueError(f"unknown anchor {name!r}; expected one of {', '.join(ANCHORS)} or biharmonic")
