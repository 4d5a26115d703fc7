"""`restoration/scoring.py`, the anchors: written as PNGs and scored by the evaluator, like a submission."""

from __future__ import annotations

import numpy as np
from conftest import make_contest_folder
from PIL import Image

from restoration.scoring import contest_pairs, score_anchors, score_answers


def test_pairs_carry_the_true_lost_region(tmp_path):
    contest = make_contest_folder(tmp_path / "contest", count=2)
    pairs = contest_pairs(contest)
    assert [p["key"] for p in pairs] == ["TEST_000", "TEST_001"]
    for p in pairs:
        assert p["gt"].shape == (64, 64, 3)
        assert p["input"].shape == p["known"].shape == (64, 64)
        lost = p["known"] == 0
        assert 0 < lost.sum() <= (64 // 3) ** 2  # the one flat rectangle the folder's inputs lost
        np.testing.assert_array_equal(p["input"][~lost], p["gray_gt"][~lost])


def test_every_anchor_is_written_and_scored_in_order_of_what_it_knows(tmp_path):
    contest = make_contest_folder(tmp_path / "contest", count=3)
    scores = score_anchors(contest, tmp_path / "out")
    assert set(scores) == {"input", "telea", "ns", "true_gray"}
    for name, result in scores.items():
        assert result["count"] == 3
        assert len(list((tmp_path / "out" / f"anchor-{name}").glob("*.png"))) == 3
    mean = {name: r["mean"] for name, r in scores.items()}
    assert mean["telea"]["M"] > mean["input"]["M"]  # a fill beats the flat patch on the lost region
    assert mean["true_gray"]["S"] > mean["telea"]["S"]  # and the true gray beats any fill
    written = np.asarray(Image.open(tmp_path / "out" / "anchor-input" / "TEST_000.png"))
    np.testing.assert_array_equal(written[..., 0], contest_pairs(contest)[0]["input"])


def test_the_ground_truth_as_an_answer_scores_perfectly(tmp_path):
    contest = make_contest_folder(tmp_path / "contest", count=2)
    pairs = contest_pairs(contest)
    result = score_answers(contest, pairs, [p["gt"] for p in pairs], tmp_path / "gt-as-answer")
    assert result["mean"]["S"] > 0.999
    assert result["mean"]["score"] > 0.99
