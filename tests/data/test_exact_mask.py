"""The exact flat-region detector recovers contest-style masks on real photos and declines when it should."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from restoration.data.exact_mask import exact_known_mask
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
        got, found = exact_known_mask(torch.from_numpy(masked)[None, None])
        assert bool(found[0])
        scores.append(iou(got[0, 0].numpy() < 0.5, known == 0))
    assert min(scores) >= 0.99, scores


def test_declines_when_the_rule_does_not_apply():
    rng = np.random.default_rng(1)
    noisy = rng.integers(0, 256, (1, 1, 128, 128), dtype=np.uint8)
    known, found = exact_known_mask(torch.from_numpy(noisy))
    assert not bool(found[0])
    assert known.min() == 1
