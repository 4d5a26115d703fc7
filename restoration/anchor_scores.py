"""The anchors scored on a contest-layout folder exactly as a submission is: written as PNGs, then read back by
`restoration-evaluate`'s code (`restoration.scoring`), so an anchor's figure and a model's are comparable to the
last digit.

Kept apart from `restoration.anchors` (which the pipeline imports for its classical fill) because scoring pulls
in the scorer and its image files; the demo and the benchmarks (`quality.py`, `ablation.py`, `contest_eval.py`)
all score their anchors here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from restoration.anchors import ANCHORS, anchor_rgb
from restoration.data.exact_mask import known_from_pair
from restoration.image_io import write_png_atomic
from restoration.scoring import evaluate_files


def contest_pairs(contest: Path) -> list[dict]:
    """key, input gray, ground truth, its gray and the true known mask of every file of a contest folder
    (`gt/`, `test_input/` and `test.csv`, the layout `restoration.demo.write_contest_folder` makes)."""
    pairs = []
    for path in sorted((contest / "gt").glob("*.png")):
        gt = np.asarray(Image.open(path).convert("RGB"))
        gray_gt = np.asarray(Image.fromarray(gt).convert("L"))
        gray_in = np.asarray(Image.open(contest / "test_input" / path.name).convert("L"))
        known, _ = known_from_pair(gray_in, gray_gt)
        pairs.append({"key": path.stem, "input": gray_in, "gt": gt, "gray_gt": gray_gt, "known": known})
    return pairs


def score_answers(contest: Path, pairs: list[dict], answers: list[np.ndarray], pred_dir: Path) -> dict:
    """(H, W, 3) uint8 answers, one per pair, written to `pred_dir` and scored against the folder's ground truth."""
    for pair, rgb in zip(pairs, answers, strict=True):
        write_png_atomic(rgb, pred_dir / f"{pair['key']}.png")
    return evaluate_files(pred_dir, contest / "gt", inputs=[str(contest / "test.csv")])


def score_anchors(contest: Path, dst: Path, names: Sequence[str] = ANCHORS) -> dict[str, dict]:
    """Each named anchor (`restoration.anchors.anchor_rgb`) scored like a submission, its PNGs in
    `dst/anchor-<name>/`."""
    pairs = contest_pairs(contest)
    results = {}
    for name in names:
        answers = [anchor_rgb(name, p["input"], p["known"], p["gray_gt"]) for p in pairs]
        results[name] = score_answers(contest, pairs, answers, dst / f"anchor-{name}")
    return results
