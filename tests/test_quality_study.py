"""The quality study's statistics (`benchmarks/study.py`): the two-level paired bootstrap behind its confidence
intervals."""

from __future__ import annotations

import numpy as np

from benchmarks import study


def runs(rng: np.random.Generator, shift: float, seeds: int = 3, photos: int = 40) -> list[dict[str, float]]:
    base = np.linspace(0.3, 0.6, photos)
    return [{f"p{i}": float(base[i] + shift + rng.normal(0, 0.03)) for i in range(photos)} for _ in range(seeds)]


def test_a_clear_gain_has_an_interval_above_zero_and_no_gain_one_around_it():
    rng = np.random.default_rng(0)
    b = runs(rng, 0.0)
    better = study.bootstrap_diff(runs(rng, 0.05), b, resamples=2000)
    assert 0.03 < better["mean"] < 0.07
    assert 0 < better["lo"] < better["mean"] < better["hi"]
    assert better["wins"] >= 35
    assert (better["photos"], better["seeds"]) == (40, 3)
    same = study.bootstrap_diff(runs(rng, 0.0), b, resamples=2000)
    assert same["lo"] < 0 < same["hi"]


def test_seed_spread_widens_the_interval():
    """A seed that lands far from the others must widen the CI: seeds are resampled, not averaged away."""
    rng = np.random.default_rng(1)
    b = runs(rng, 0.0)
    steady = study.bootstrap_diff(runs(rng, 0.02), b, resamples=2000)
    a = runs(rng, 0.02)
    a[0] = {k: v + 0.1 for k, v in a[0].items()}
    noisy = study.bootstrap_diff(a, b, resamples=2000)
    assert noisy["hi"] - noisy["lo"] > 2 * (steady["hi"] - steady["lo"])


def test_one_seed_of_zero_keeps_the_old_layout(tmp_path):
    assert study.seed_dir(tmp_path, 0, [0]) == tmp_path
    assert study.seed_dir(tmp_path, 2, [0, 1, 2]) == tmp_path / "seed-2"
