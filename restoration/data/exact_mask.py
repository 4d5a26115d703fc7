"""The exact lost-region detector for contest-style inputs (no ground truth needed).

Contest rule: one region per image was overwritten with one uniform gray value. Such a region is a connected set of
pixels of one exact value, and most of it is *flat* (every pixel of its 3x3 neighbourhood has the same value);
natural photos almost never contain large exactly-flat areas. So: find the value whose flat pixels form the largest
connected component, take that component of the "equal to the value" map (which adds the region's boundary
pixels), skip candidates whose rim fades smoothly into the photo (clipped skies and shadows), and fill small
holes. The rule applies when that component is at least `min_area` pixels with a bounding box of at least
`min_side` on each side (at 512 px: 400 and 16, below the contest masks' > 625 px and >= 50 px a side; both scale
with the image size): smaller flat patches occur in photos and are not taken for holes.

Those are lower limits; a contest hole also has an upper one. It is one polygon drawn in a box of at most about 0.6
of each side of the image (`restoration.data.masks.MaskConfig.max_box_fraction`; the training circles and squares
are smaller still), so it never spans the image from one edge to the opposite one and never covers half of it. A
flat region that does is a background (a white studio backdrop, letterbox bars, a scan's margin), whatever its rim
looks like: it is skipped like a clipped sky, and when no other candidate remains the rule is refused with that
reason (`find_exact_hole`), so that the caller falls back (`restoration.pipeline.Pipeline.known_mask`: the learned
detector, else nothing lost) and says so, instead of repainting known pixels.

When it is wrong: inputs whose fill is noisy or blended (not contest-style), several holes (only the largest is
found), or photos with a clipped flat area (pure black/white sky) larger than the real hole and within the upper
limit. The learned detector (`restoration.models.detector`) is the fallback for those.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

MIN_AREA = 400
MIN_SIDE = 16
MAX_AREA_FRACTION = 0.5  # a contest hole covers at most ~0.36 of the image (a polygon in a 0.6 x 0.6 box)


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


def implausible_hole(hole: np.ndarray, value: int) -> str | None:
    """Why `hole` (a filled candidate region of gray `value`) cannot be a contest hole, or None when it can: it spans
    the image from edge to edge, or covers more than half of it (see the module docstring)."""
    h, w = hole.shape
    size = f"its flat region of gray {value} ({int(hole.sum()):,} of {h * w:,} pixels)"
    if hole[0].any() and hole[-1].any():
        return f"{size} spans the image from top to bottom: a background, not a contest hole"
    if hole[:, 0].any() and hole[:, -1].any():
        return f"{size} spans the image from left to right: a background, not a contest hole"
    if hole.mean() > MAX_AREA_FRACTION:
        return f"{size} covers more than {MAX_AREA_FRACTION:.0%} of the image: a background, not a contest hole"
    return None


def exact_hole(
    gray: np.ndarray, *, min_area: int | None = None, min_side: int | None = None, max_smooth_rim: float = 0.5
) -> np.ndarray | None:
    """(H, W) uint8 -> boolean hole map (True = lost), or None when the contest rule does not apply (see
    `find_exact_hole`, which also says why it was refused)."""
    return find_exact_hole(gray, min_area=min_area, min_side=min_side, max_smooth_rim=max_smooth_rim)[0]


def find_exact_hole(
    gray: np.ndarray, *, min_area: int | None = None, min_side: int | None = None, max_smooth_rim: float = 0.5
) -> tuple[np.ndarray | None, str | None]:
    """(H, W) uint8 -> (boolean hole map (True = lost) or None, why the rule was refused or None).

    Candidates: for the values with the most flat pixels, the largest flat component grown to its equal-valued
    rim. A candidate whose rim continues smoothly into the photo (a clipped highlight or shadow) is skipped, and so
    is one no contest hole could be (`implausible_hole`: a background); the largest remaining candidate wins if it
    is large enough. The reason is given when the rule found nothing after skipping such a background: the one
    case where the input has a flat region that it declines to call the hole.
    """
    default_area, default_side = size_thresholds(gray.shape)
    min_area = default_area if min_area is None else min_area
    min_side = default_side if min_side is None else min_side
    flat = _flat(gray)
    if not flat.any() or min(gray.shape) < min_side:  # no hole of min_side fits: every region would span the image
        return None, None
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
    refused: str | None = None
    for _, value, region in sorted(candidates, key=lambda c: -c[0]):
        if _smooth_rim(gray, region, value) > max_smooth_rim:
            continue
        hole = ndimage.binary_fill_holes(region)
        reason = implausible_hole(hole, value)
        if reason is not None:
            refused = refused or reason
            continue
        ys, xs = np.nonzero(hole)
        if hole.sum() < min_area or (ys.max() - ys.min() + 1) < min_side or (xs.max() - xs.min() + 1) < min_side:
            return None, refused
        return hole, None
    return None, refused


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
