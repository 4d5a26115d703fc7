"""Seeded generators of `known_mask` (1 = known, 0 = lost) in the styles the contest and MAT use.

- test style (the contest's test inputs): one random polygon with 3-20 vertices, drawn as a random simple,
  star-shaped or convex polygon (the three generators of the `polygenerator` package the organisers most likely
  used), stretched to fill a random box of at least 50 px a side, area > 625 px; filled with one uniform random gray.
- train style (the contest's training inputs): a filled circle or square of ~100-180 px, near-black fill.
- free form (MAT's training masks): boxes and thick brush strokes until the hole ratio reaches a drawn target.

Sizes are given for 512 px images and scale with the image. Every draw takes a `numpy.random.Generator`, so a mask
is a pure function of its seed (val shards bake their masks from a per-sample seed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

REFERENCE_SIZE = 512


@dataclass
class MaskConfig:
    """Mixture weights of the styles (normalised) and the free-form hole-ratio range."""

    test_style: float = 0.6
    train_style: float = 0.2
    free_form: float = 0.2
    min_vertices: int = 3
    max_vertices: int = 20
    min_box: int = 50  # px at 512, per side
    min_area: int = 626  # px at 512 (area > 625)
    max_box_fraction: float = 0.6  # the polygon's box is at most this fraction of the image side
    free_form_hole_ratio: tuple[float, float] = (0.1, 0.4)

    def __post_init__(self) -> None:
        weights = (self.test_style, self.train_style, self.free_form)
        if min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"mask style weights must be >= 0 and not all 0, got {weights}")
        if not 3 <= self.min_vertices <= self.max_vertices:
            raise ValueError(f"need 3 <= min_vertices <= max_vertices, got {self.min_vertices}, {self.max_vertices}")
        lo, hi = self.free_form_hole_ratio
        if not 0 < lo <= hi < 1:
            raise ValueError(f"free_form_hole_ratio must satisfy 0 < lo <= hi < 1, got {self.free_form_hole_ratio}")


# -- polygons in the unit square (stretched to a box afterwards) -------------------------------------------------


def random_simple_polygon(rng: np.random.Generator, n: int) -> np.ndarray:
    """n random points ordered by angle around a random interior point: a simple (non-self-intersecting) polygon."""
    points = rng.random((n, 2))
    pivot = points.mean(axis=0) + (rng.random(2) - 0.5) * 0.2
    order = np.argsort(np.arctan2(points[:, 1] - pivot[1], points[:, 0] - pivot[0]))
    return points[order]


def random_star_polygon(rng: np.random.Generator, n: int) -> np.ndarray:
    """Star-shaped: sorted random angles, random radii around the centre."""
    angles = np.sort(rng.random(n) * 2 * math.pi)
    radii = rng.uniform(0.2, 1.0, n)
    return np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)


def random_convex_polygon(rng: np.random.Generator, n: int) -> np.ndarray:
    """Valtr's algorithm: a uniformly random convex polygon with n vertices."""

    def split_chain(values: np.ndarray) -> np.ndarray:
        values = np.sort(values)
        lo, hi = values[0], values[-1]
        a, b = [lo], [lo]
        for v in values[1:-1]:
            (a if rng.random() < 0.5 else b).append(v)
        a.append(hi)
        b.append(hi)
        return np.concatenate([np.diff(a), -np.diff(b)])

    dx, dy = split_chain(rng.random(n)), split_chain(rng.random(n))
    rng.shuffle(dy)
    vectors = np.stack([dx, dy], axis=1)
    vectors = vectors[np.argsort(np.arctan2(vectors[:, 1], vectors[:, 0]))]
    return np.cumsum(vectors, axis=0)


def _stretch(points: np.ndarray, box: tuple[float, float, float, float]) -> list[tuple[float, float]]:
    """Scale the polygon so its bounding box fills `box` = (x0, y0, w, h), like polygenerator's outputs."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    unit = (points - lo) / np.maximum(hi - lo, 1e-9)
    x0, y0, w, h = box
    return [(x0 + u * (w - 1), y0 + v * (h - 1)) for u, v in unit]


def _raster(height: int, width: int, draw_fn) -> np.ndarray:
    canvas = Image.new("L", (width, height), 0)
    draw_fn(ImageDraw.Draw(canvas))
    return np.asarray(canvas) > 0  # hole map


# -- the styles --------------------------------------------------------------------------------------------------


def polygon_hole(rng: np.random.Generator, height: int, width: int, cfg: MaskConfig) -> np.ndarray:
    scale = min(height, width) / REFERENCE_SIZE
    min_box = max(3, round(cfg.min_box * scale))
    min_area = max(4, round(cfg.min_area * scale * scale))
    max_w, max_h = max(min_box, int(width * cfg.max_box_fraction)), max(min_box, int(height * cfg.max_box_fraction))
    hole = np.zeros((height, width), bool)
    for _ in range(50):  # redraw until the area condition holds (almost always at once)
        n = int(rng.integers(cfg.min_vertices, cfg.max_vertices + 1))
        kind = int(rng.integers(3))
        points = (random_simple_polygon, random_star_polygon, random_convex_polygon)[kind](rng, n)
        w, h = int(rng.integers(min_box, max_w + 1)), int(rng.integers(min_box, max_h + 1))
        x0, y0 = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        polygon = _stretch(points, (x0, y0, w, h))
        hole = _raster(height, width, lambda d, p=polygon: d.polygon(p, fill=255))
        if np.count_nonzero(hole) >= min_area:
            break
    return hole


def blob_hole(rng: np.random.Generator, height: int, width: int, cfg: MaskConfig) -> np.ndarray:
    scale = min(height, width) / REFERENCE_SIZE
    size = max(4, round(rng.uniform(100, 180) * scale))
    size = min(size, height, width)
    x0, y0 = int(rng.integers(0, width - size + 1)), int(rng.integers(0, height - size + 1))
    box = (x0, y0, x0 + size - 1, y0 + size - 1)
    if rng.random() < 0.5:
        return _raster(height, width, lambda d: d.ellipse(box, fill=255))
    return _raster(height, width, lambda d: d.rectangle(box, fill=255))


def free_form_hole(rng: np.random.Generator, height: int, width: int, cfg: MaskConfig) -> np.ndarray:
    target = rng.uniform(*cfg.free_form_hole_ratio)
    scale = min(height, width) / REFERENCE_SIZE
    pixels = height * width
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    drawn = 0.0  # an upper bound of the hole's area: the sum of the shapes' bounding areas, with a margin
    for _ in range(60):
        if rng.random() < 0.3:  # a box
            w, h = (
                rng.integers(max(2, width // 10), max(3, width // 3)),
                rng.integers(max(2, height // 10), max(3, height // 3)),
            )
            x0, y0 = rng.integers(0, width - w + 1), rng.integers(0, height - h + 1)
            draw.rectangle((int(x0), int(y0), int(x0 + w), int(y0 + h)), fill=255)
            drawn += float((w + 2) * (h + 2))
        else:  # a brush stroke: a random walk of thick segments
            x, y = rng.uniform(0, width), rng.uniform(0, height)
            brush = max(2, round(rng.uniform(12, 40) * scale))
            angle = rng.uniform(0, 2 * math.pi)
            for _ in range(int(rng.integers(4, 12))):
                angle += rng.uniform(-1.2, 1.2)
                length = rng.uniform(10, 60) * scale
                nx = min(max(float(x + length * math.cos(angle)), 0.0), width - 1.0)
                ny = min(max(float(y + length * math.sin(angle)), 0.0), height - 1.0)
                draw.line((x, y, nx, ny), fill=255, width=brush)
                draw.ellipse((nx - brush / 2, ny - brush / 2, nx + brush / 2, ny + brush / 2), fill=255)
                drawn += (math.hypot(nx - x, ny - y) + brush + 4) * (brush + 4) + (brush + 4) ** 2
                x, y = nx, ny
        # the hole ratio, counted by PIL without a copy; skipped while even the bound is short of the target
        if drawn >= target * pixels and (pixels - canvas.histogram()[0]) / pixels >= target:
            break
    return np.asarray(canvas) > 0


def sample_known_mask(rng: np.random.Generator, height: int, width: int, cfg: MaskConfig) -> tuple[np.ndarray, int]:
    """One mask of the configured mixture: (known (H, W) uint8 in {0, 1}, fill gray value 0..255)."""
    weights = np.array([cfg.test_style, cfg.train_style, cfg.free_form], dtype=float)
    style = int(rng.choice(3, p=weights / weights.sum()))
    if style == 0:
        hole, fill = polygon_hole(rng, height, width, cfg), int(rng.integers(0, 256))
    elif style == 1:
        hole, fill = blob_hole(rng, height, width, cfg), int(rng.integers(0, 11))
    else:
        hole, fill = free_form_hole(rng, height, width, cfg), int(rng.integers(0, 256))
    return (~hole).view(np.uint8), fill  # bool is one byte of 0 or 1: a view, not a copy
