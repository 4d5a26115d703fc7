"""The quality study's statistics (`benchmarks/study.py`): the two-level paired bootstrap behind its confidence
intervals."""

from __future__ import annotations

import numpy as np
import pytest

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


def test_joint_arm_branches_from_b_where_asked_and_carries_its_state(tmp_path):
    """(c)'s design: the original (from (b) at S/2, restarted) keeps its run name; a later branch point reads (b)'s
    checkpoint there, follows the rest of (b)'s learning-rate curve and, with carry, continues its optimizer."""
    from benchmarks.quality import Branch, continue_schedule, pipelines, plan, sources
    from restoration.optim import OptimConfig

    optim = OptimConfig(lr=1e-3, d_lr=1e-3, warmup_steps=20, schedule="cosine")
    original = next(a for a in plan(tmp_path, 200, optim) if a.stage == "joint" and a.init)
    assert (original.name, original.steps) == ("c-joint", 100)
    assert original.init[0] == tmp_path / "b-inpaint" / "checkpoints" / "step-00000100"
    assert "init.carry_state=true" not in original.overrides

    late = Branch(0.75, carry=True)
    c = next(a for a in plan(tmp_path, 200, optim, late) if a.stage == "joint" and a.init)
    assert (c.name, c.steps) == ("c-joint-at75-carry", 50)
    assert c.init == [tmp_path / "b-inpaint" / "checkpoints" / "step-00000150",
                      tmp_path / "b-colorize" / "checkpoints" / "step-00000150"]  # fmt: skip
    assert "init.carry_state=true" in c.overrides
    assert continue_schedule(optim, 200, 150)[0] != continue_schedule(optim, 200)[0]  # a cooler start than at S/2
    every_b = {a.checkpoint_every for a in plan(tmp_path, 200, optim, late) if a.name.startswith("b-")}
    assert 150 % every_b.pop() == 0  # (b) keeps a checkpoint where (c) starts

    start = pipelines(200, late)["(c) start: (b) at step 150"][0]
    assert sources(tmp_path, start, 200) == c.init
    assert Branch(0.75).run() == "c-joint-at75"
    with pytest.raises(SystemExit, match="--branch 0.6"):
        Branch(0.6).step(200)
