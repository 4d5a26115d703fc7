"""`benchmarks/ablation.py`: every default arm is a valid override set of the CPU preset that changes its term."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import ablation
from restoration.config import load_config
from restoration.recipe import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", [n for n in ablation.DEFAULT_ARMS if n != ablation.PRESET])
def test_each_default_arm_loads_and_changes_one_loss_weight(name):
    config = ROOT / "configs" / "cpu30.yaml"
    base = load_config(TrainConfig, config, [])
    arm = load_config(TrainConfig, config, ablation.DEFAULT_ARMS[name])
    changed = {k for k, v in vars(arm.loss).items() if getattr(base.loss, k) != v}
    assert len(changed) == 1, changed
    (key,) = changed
    assert f"loss.{key}=" in ablation.DEFAULT_ARMS[name][0]


def test_run_names_are_safe_and_distinct():
    slugs = {ablation.slug(n) for n in ablation.DEFAULT_ARMS}
    assert len(slugs) == len(ablation.DEFAULT_ARMS)
    assert all(s and all(c.isalnum() or c == "-" for c in s) for s in slugs)
