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
"""

from __future__ import annotations

from typing import Literal

import numpy as np

FillMethod = Literal["telea", "ns", "biharmonic"]
FILL_RADIUS = 5
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
        from skimage.restoration import inpaint_biharmonic

        filled = inpaint_biharmonic(gray.astype(np.float64) / 255.0, lost)
        filled = np.clip(np.round(filled * 255.0), 0, 255).astype(np.uint8)
    else:
        cv2 = _cv2()
        flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
        filled = cv2.inpaint(gray, lost.astype(np.uint8), FILL_RADIUS, flag)
    return np.where(lost, filled, gray).astype(np.uint8)


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
