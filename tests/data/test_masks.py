"""Mask generators: contest constraints, reproducibility, mixture."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from restoration.data.masks import (
    MaskConfig,
    blob_hole,
    free_form_hole,
    polygon_hole,
    random_convex_polygon,
    random_simple_polygon,
    random_star_polygon,
    sample_known_mask,
)


def test_polygon_holes_meet_contest_constraints_at_512():
    cfg = MaskConfig()
    rng = np.random.default_rng(0)
    for _ in range(40):
        hole = polygon_hole(rng, 512, 512, cfg)
        ys, xs = np.nonzero(hole)
        assert hole.sum() > 625
        assert ys.max() - ys.min() + 1 >= 49  # PIL's polygon fill may lose the last row/column
        assert xs.max() - xs.min() + 1 >= 49
        assert ndimage.label(hole)[1] >= 1


@pytest.mark.parametrize("make", [random_simple_polygon, random_star_polygon, random_convex_polygon])
def test_polygon_vertex_counts(make):
    rng = np.random.default_rng(1)
    for n in (3, 7, 20):
        assert make(rng, n).shape == (n, 2)


def test_convex_polygon_is_convex():
    pts = random_convex_polygon(np.random.default_rng(2), 12)
    edges = np.roll(pts, -1, axis=0) - pts
    cross = edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    assert (cross >= -1e-12).all() or (cross <= 1e-12).all()


def test_train_style_and_free_form():
    rng = np.random.default_rng(3)
    blob = blob_hole(rng, 512, 512, MaskConfig())
    side = np.sqrt(blob.sum())
    assert 80 <= side <= 185
    cfg = MaskConfig(free_form_hole_ratio=(0.2, 0.3))
    ratios = [free_form_hole(rng, 256, 256, cfg).mean() for _ in range(5)]
    assert all(0.15 <= r <= 0.6 for r in ratios)


def test_sampling_is_reproducible_and_follows_the_mixture():
    cfg = MaskConfig(test_style=1, train_style=0, free_form=0)
    a = sample_known_mask(np.random.default_rng(7), 128, 96, cfg)
    b = sample_known_mask(np.random.default_rng(7), 128, 96, cfg)
    assert np.array_equal(a[0], b[0])
    assert a[1] == b[1]
    assert a[0].shape == (128, 96)
    assert set(np.unique(a[0])) <= {0, 1}
    assert 0 < a[0].mean() < 1
    near_black = MaskConfig(test_style=0, train_style=1, free_form=0)
    fills = [sample_known_mask(np.random.default_rng(s), 64, 64, near_black)[1] for s in range(10)]
    assert max(fills) <= 10


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="weights"):
        MaskConfig(test_style=0, train_style=0, free_form=0)
    with pytest.raises(ValueError, match="vertices"):
        MaskConfig(min_vertices=2)
