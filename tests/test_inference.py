"""The inference settings and the one rule that chooses a model's defaults."""

from __future__ import annotations

import pytest

from restoration.inference import CHROMA_SCALES, InferenceSettings, choose_settings


def fake_scores(tile: float, fill: float, half: float):
    seen = []

    def score(s: InferenceSettings) -> dict:
        seen.append(s.label())
        base = {"tile": tile, "fill": fill}[s.inpaint_mode]
        return {"score": half if s.chroma_scale == 0.5 else base - (1 - s.chroma_scale) * 0.01}

    return score, seen


@pytest.mark.parametrize(
    ("tile", "fill", "half", "chosen"),
    [(0.5, 0.4, 0.4, ("tile", 1.0)), (0.4, 0.5, 0.6, ("fill", 0.5)), (0.5, 0.5, 0.5, ("tile", 1.0))],
)
def test_the_best_score_wins_and_ties_keep_mat_and_full_color(tile, fill, half, chosen):
    score, seen = fake_scores(tile, fill, half)
    got, results = choose_settings(score, InferenceSettings(), colorizes=True)
    assert (got.inpaint_mode, got.chroma_scale) == chosen
    # both inpaint modes at full color, then every chroma strength on the chosen mode, each scored once
    assert seen[:2] == ["tile", "fill"]
    assert len(seen) == 2 + len(CHROMA_SCALES) - 1 == len(results)


def test_without_a_colorizer_only_the_inpaint_mode_is_chosen():
    score, seen = fake_scores(0.3, 0.6, 0.9)
    got, results = choose_settings(score, InferenceSettings(truncation_psi=1.0), colorizes=False)
    assert (got.inpaint_mode, got.chroma_scale, got.truncation_psi) == ("fill", 1.0, 1.0)  # the base is kept
    assert set(results) == {"tile", "fill"}


def test_settings_are_validated_and_recorded_round_trip():
    with pytest.raises(ValueError, match="color mode"):
        InferenceSettings(color_mode="half")
    with pytest.raises(ValueError, match="precision"):
        InferenceSettings(precision="fp16")
    s = InferenceSettings(inpaint_mode="fill", chroma_scale=0.75, precision="bf16")
    assert s.label() == "fill, chroma x0.75"
    assert s.recorded() == {"inpaint_mode": "fill", "color_mode": "resize", "chroma_scale": 0.75, "chroma_flip": False}
    # recorded settings come back per key from the first source that has them; precision is never recorded
    back = InferenceSettings.from_recorded([{"chroma_scale": 0.75}, {"inpaint_mode": "fill", "chroma_scale": 0.25}])
    assert (back.inpaint_mode, back.chroma_scale, back.precision) == ("fill", 0.75, "fp32")


def test_the_flip_round_is_tried_last_and_only_when_asked():
    seen = []

    def score(s: InferenceSettings) -> dict:
        seen.append(s.label())
        return {"score": 0.5 + 0.1 * s.chroma_flip}

    got, _ = choose_settings(score, InferenceSettings(), colorizes=True, flips=(False, True))
    assert got.chroma_flip
    assert seen[-1] == "tile, flip"
    got, _ = choose_settings(score, InferenceSettings(), colorizes=True)
    assert not got.chroma_flip
