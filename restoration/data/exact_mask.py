"""The exact lost-region detector for contest-style inputs (no ground truth needed).

Contest rule: one region per image was overwritten with one uniform gray value. Such a region is a connected set of
pixels of one exact value, and most of it is *flat* (every pixel of its 3x3 neighbourhood has the same value);
natural photos almost never contain large exactly-flat areas. So: find the value whose flat pixels form the largest
connected component, take that component of the "equal to the value" map (which adds the region's boundary
pixels), skip candidates whose rim fades smoothly into the photo (clipped skies and shadows), and fill small
holes. The rule applies when that component is at least `min_area` pixels with a bounding box of at least
`min_side` on each side (at 512 px: 400 and 16, below the contest masks' > 625 px and >= 50 px a side; both scale
with the image size).

When it is wrong: inputs whose fill is noisy or blended (not contest-style), several holes (only the largest is
found), or photos with a clipped flat area (pure black/white sky) larger than the real hole. The learned detector
(`restoration.models.detector`) is the fallback for those.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

MIN_AREA = 400
MIN_SIDE = 16


def _flat(gray: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood is constant (borders use edge replication)."""
    padded = np.pad(gray, 1, mode="edge")
    flat = np.ones(gray.shape, bool)
    h, w = gray.shape
    for dy in range(3):
        for dx in range(3):
            flat &= padded[dy : dy + h, dx : dx + w] == gray
    return flat


def _smooth_rim(gray: np.ndarray, region: np.ndarray, value: int, tolerance: int = 3) -> float:
    """Fraction of the pixels just outside `region` whose value is within `tolerance` of `value`.

    A clipped natural area (a white sky at 255) fades into its surroundings (254, 252, ...): a high fraction. An
    overwritten region cuts through the picture: its rim holds whatever the photo had there, a low fraction.
    """
    rim = ndimage.binary_dilation(region, iterations=2) & ~region
    if not rim.any():
        return 0.0
    return float((np.abs(gray[rim].astype(int) - value) <= tolerance).mean())


def size_thresholds(shape: tuple[int, int]) -> tuple[int, int]:
    """(min_area, min_side) for an image of `shape`: the contest's 512 px values, scaled with the image (with
    floors), so that downscaled or small inputs keep proportionally smaller holes detectable."""
    h, w = shape
    scale = min(h, w) / 512
    return max(16, round(MIN_AREA * h * w / 512**2)), max(4, round(MIN_SIDE * scale))


def exact_hole(
    gray: np.ndarray, *, min_area: int | None = None, min_side: int | None = None, max_smooth_rim: float = 0.5
) -> np.ndarray | None:
    """(H, W) uint8 -> boolean hole map (True = lost), or None when the contest rule does not apply.

    Candidates: for the values with the most flat pixels, the largest flat component grown to its equal-valued
    rim. A candidate whose rim continues smoothly into the photo (a clipped highlight or shadow) is skipped; the
    largest remaining candidate wins.
    """
    default_area, default_side = size_thresholds(gray.shape)
    min_area = default_area if min_area is None else min_area
    min_side = default_side if min_side is None else min_side
    flat = _flat(gray)
    if not flat.any():
        return None
    values, counts = np.unique(gray[flat], return_counts=True)
    candidates = []
    for value in values[np.argsort(-counts)][:6]:  # the few values with the most flat pixels
        labels, n = ndimage.label(flat & (gray == value))
        if n == 0:
            continue
        sizes = np.bincount(labels.ravel())[1:]
        core = labels == (int(np.argmax(sizes)) + 1)
        # grow the flat core to the connected equal-valued pixels around it (the region's 1-px rim is not flat)
        equal_labels, _ = ndimage.label(gray == value)
        region = equal_labels == equal_labels[core][0]
        candidates.append((int(sizes.max()), int(value), region))
    for _, value, region in sorted(candidates, key=lambda c: -c[0]):
        if _smooth_rim(gray, region, value) > max_smooth_rim:
            continue
        hole = ndimage.binary_fill_holes(region)
        ys, xs = np.nonzero(hole)
        if hole.sum() < min_area or (ys.max() - ys.min() + 1) < min_side or (xs.max() - xs.min() + 1) < min_side:
            return None
        return hole
    return None


def known_from_pair(inp: np.ndarray, gray_gt: np.ndarray) -> tuple[np.ndarray, int]:
    """Exact known mask from a contest pair (both (H, W) uint8): lost = input != L(gt), then the lost pixels that
    kept their value by chance (the fill equalled the original gray) are recovered: enclosed ones by hole filling,
    ones on the region's edge by a 3x3 closing restricted to pixels showing the fill value.
    Returns (known (H, W) uint8 {0, 1}, fill value)."""
    lost = inp != gray_gt
    if not lost.any():
        return np.ones(inp.shape, np.uint8), 0
    fill = int(np.median(inp[lost]))
    shows_fill = inp == fill
    lost = ndimage.binary_fill_holes(lost)
    closed = ndimage.binary_closing(lost, structure=np.ones((3, 3), bool), border_value=0)
    lost = lost | (closed & shows_fill)
    return (~lost).astype(np.uint8), fill
