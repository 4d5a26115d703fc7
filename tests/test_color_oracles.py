"""The C oracles: the truth's own colour scores 1, less of it scores less, a gray answer scores like gray."""

from __future__ import annotations

import numpy as np
import torch
from einops import rearrange

from benchmarks.color_oracles import answers
from restoration.metrics import color_similarity


def test_the_truths_chroma_scores_one_and_fainter_chroma_scores_less():
    rng = np.random.default_rng(0)
    smooth = rng.uniform(0, 255, (8, 8, 3))
    photo = np.kron(smooth, np.ones((8, 8, 1))).astype(np.uint8)  # 64x64 blocks of random colour
    gt = rearrange(torch.from_numpy(photo), "h w c -> 1 c h w")
    c = {name: float(color_similarity(a, gt)[0]) for name, a in answers(gt).items()}
    assert c["the truth's chroma x1"] > 0.99
    assert c["the truth's chroma x1"] > c["the truth's chroma x0.25"] > c["the truth's chroma x0.03"]
    gray = answers(gt)["gray (no colour)"]
    assert torch.equal(gray[:, 0], gray[:, 1])
    assert torch.equal(gray[:, 1], gray[:, 2])
