"""The exact flat-region detector recovers contest-style masks on real photos and declines when it should."""

from __future__ import annotations

import numpy as np
from PIL import Image

from restoration.data.exact_mask import exact_hole
from restoration.data.masks import MaskConfig, sample_known_mask


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_recovers_generated_contest_masks_on_real_photos(shared_photos):
    rng = np.random.default_rng(0)
    cfg = MaskConfig(test_style=0.7, train_style=0.3, free_form=0.0)
    scores = []
    for path in shared_photos[:12]:
        gray = np.array(Image.open(path).convert("L").resize((256, 256)))
        known, fill = sample_known_mask(rng, 256, 256, cfg)
        masked = np.where(known == 1, gray, fill).astype(np.uint8)
        hole = exact_hole(masked)
        assert hole is not None
        scores.append(iou(hole, known == 0))
    assert min(scores) >= 0.99, scores


def test_declines_when_the_rule_does_not_apply():
    rng = np.random.default_rng(1)
    noisy = rng.integers(0, 256, (128, 128), dtype=np.uint8)
    assert exact_hole(noisy) is None


def test_uniform_fill_is_found_exactly_and_a_noisy_fill_is_not():
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    uniform = gray.copy()
    uniform[10:40, 20:50] = 93  # contest-style: one uniform fill
    hole = exact_hole(uniform)
    assert hole is not None
    assert hole[10:40, 20:50].all()
    assert hole.sum() == 30 * 30
    noisy = gray.copy()
    noisy[10:40, 20:50] = (93 + rng.integers(-3, 4, (30, 30))).astype(np.uint8)  # noisy fill: the rule fails
    assert exact_hole(noisy) is None
