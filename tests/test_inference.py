"""The inference settings and the one rule that chooses a model's defaults."""

from __future__ import annotations

import numpy as np
import pytest

from restoration.inference import (
    CHROMA_FLOORS,
    CHROMA_SCALES,
    PER_IMAGE,
    VS_NO_FLOOR,
    InferenceSettings,
    choose_settings,
    paired_lower_bound,
)


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
    # both inpaint modes at full color, then every chroma strength on the chosen mode, then every floor on that
    # (here a floor changes nothing, so none is taken: the first candidate wins a tie), each scored once
    assert seen[:2] == ["tile", "fill"]
    assert len(seen) == 2 + len(CHROMA_SCALES) - 1 + len(CHROMA_FLOORS) - 1 == len(results)
    assert got.chroma_floor == 0.0


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
    assert s.recorded() == {
        "inpaint_mode": "fill", "color_mode": "resize", "chroma_scale": 0.75, "chroma_floor": 0.0, "chroma_flip": False
    }  # fmt: skip
    with pytest.raises(ValueError, match="chroma floor"):
        InferenceSettings(chroma_floor=0.3)
    assert InferenceSettings(chroma_floor=0.02).label() == "tile, chroma floor 0.02"
    assert InferenceSettings.from_recorded([{"chroma_floor": 0.02}]).chroma_floor == 0.02
    # recorded settings come back per key from the first source that has them; precision is never recorded
    back = InferenceSettings.from_recorded([{"chroma_scale": 0.75}, {"inpaint_mode": "fill", "chroma_scale": 0.25}])
    assert (back.inpaint_mode, back.chroma_scale, back.precision) == ("fill", 0.75, "fp32")


def test_the_floor_round_comes_after_the_scale_and_keeps_its_choice():
    seen = []

    def score(s: InferenceSettings) -> dict:
        seen.append(s.label())
        return {"score": 0.5 - abs(s.chroma_scale - 0.75) - abs(s.chroma_floor - 0.02)}

    got, _ = choose_settings(score, InferenceSettings(), colorizes=True)
    assert (got.chroma_scale, got.chroma_floor) == (0.75, 0.02)
    assert seen[-1] == "tile, chroma x0.75, chroma floor 0.04"  # every floor tried on the chosen scale
    got, results = choose_settings(score, InferenceSettings(), colorizes=False)
    assert got.chroma_floor == 0.0
    assert not any("floor" in label for label in results)


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


def per_image_scores(tile: list[float], fill: list[float]):
    """A score function whose candidates carry each image's score (as `validation.choose` gives them)."""

    def score(s: InferenceSettings) -> dict:
        values = {"tile": tile, "fill": fill}[s.inpaint_mode]
        return {"score": sum(values) / len(values), PER_IMAGE: {f"img{i}": v for i, v in enumerate(values)}}

    return score


def test_mat_must_beat_the_fill_beyond_noise_to_be_chosen():
    rng = np.random.default_rng(1)
    fill = list(rng.uniform(0.3, 0.7, 24))
    wobble = rng.normal(0, 0.05, 24)
    noisy = [f + d for f, d in zip(fill, wobble - wobble.mean() + 0.005, strict=True)]  # +0.005 on average: noise
    got, _ = choose_settings(per_image_scores(noisy, fill), InferenceSettings(), colorizes=False)
    assert got.inpaint_mode == "fill"  # the mean alone would pick MAT
    better = [f + 0.03 + d for f, d in zip(fill, rng.normal(0, 0.01, 24), strict=True)]
    got, _ = choose_settings(per_image_scores(better, fill), InferenceSettings(), colorizes=False)
    assert got.inpaint_mode == "tile"


def test_a_chroma_floor_must_beat_none_beyond_noise_to_be_chosen():
    rng = np.random.default_rng(2)
    base = rng.uniform(0.3, 0.7, 24)

    def scores(gain_of_floor) -> callable:
        def score(s: InferenceSettings) -> dict:
            values = base + (gain_of_floor(s.chroma_floor) if s.chroma_floor else 0.0)
            return {"score": float(values.mean()), PER_IMAGE: {f"img{i}": float(v) for i, v in enumerate(values)}}

        return score

    wobble = {f: rng.normal(0, 0.05, 24) for f in CHROMA_FLOORS}
    noise = lambda f: wobble[f] - wobble[f].mean() + 0.001 * f / 0.01  # noqa: E731  (+0.001 to +0.004: noise)
    got, results = choose_settings(scores(noise), InferenceSettings(), colorizes=True, inpaint_modes=("fill",))
    assert got.chroma_floor == 0.0  # the best mean alone would take 0.04
    assert all(results[got.but(chroma_floor=f).label()][VS_NO_FLOOR] < 0 for f in CHROMA_FLOORS[1:])
    steady = lambda f: 0.02 + rng.normal(0, 0.002, 24) if f == 0.02 else -0.01  # noqa: E731
    got, _ = choose_settings(scores(steady), InferenceSettings(), colorizes=True, inpaint_modes=("fill",))
    assert got.chroma_floor == 0.02


def test_the_paired_lower_bound_pairs_images_by_key_and_is_reproducible():
    old = {"a": 0.1, "b": 0.5, "c": 0.9}
    new = {"c": 1.0, "a": 0.2, "b": 0.6, "extra": 0.0}  # another order and an unpaired key
    assert paired_lower_bound(new, old) == pytest.approx(0.1)  # every image gains 0.1
    wobbly = {"a": 0.3, "b": 0.4, "c": 1.0}
    assert paired_lower_bound(wobbly, old) == paired_lower_bound(wobbly, old) < 0.1
    assert paired_lower_bound({"a": 1.0}, old) == float("-inf")  # one image proves nothing
