import json

import pytest
import torch

from restoration import mode_choice
from restoration.config import load_config
from restoration.pipeline import load_pipeline
from restoration.recipe import TrainConfig
from tests.conftest import TINY_CONFIG, write_tiny_export


def tiny_data(shards):
    return load_config(TrainConfig, TINY_CONFIG, [f"data.root={shards}"]).data


def test_an_untrained_mat_loses_to_the_classical_fill_and_the_export_defaults_to_it(tmp_path, tiny_shards):
    final = write_tiny_export(tmp_path / "final")
    data = tiny_data(tiny_shards)
    best, results = mode_choice.choose_inpaint_mode(final, data, torch.device("cpu"), 100)
    # random MAT weights paint noise into the hole; the fill is smooth: M tells them apart
    assert results["fill"]["M"] > results["tile"]["M"] + 0.05
    assert best == "fill"
    assert json.loads((final / "pipeline.json").read_text())["inference"]["inpaint_mode"] == "fill"
    table = json.loads((final / mode_choice.RESULT_FILE).read_text())
    assert table["chosen"] == "fill"
    assert table["samples"] == len(mode_choice.val_samples(data, 100)) > 1
    assert load_pipeline([final]).inpaint_mode == "fill"


def test_the_samples_are_the_contest_input_with_its_true_mask(tiny_shards):
    samples = mode_choice.val_samples(tiny_data(tiny_shards), 4)
    assert len(samples) == 4
    for s in samples:
        assert s["input"].shape == s["known"].shape == (64, 64)
        assert s["gt"].shape == (3, 64, 64)
        assert 0 < s["known"].mean() < 1
        gray_gt = (s["gt"].astype(float) * [[[0.299]], [[0.587]], [[0.114]]]).sum(0)
        known = s["known"] == 1
        assert abs(s["input"][known] - gray_gt[known]).max() <= 1  # known pixels are the true gray


@pytest.mark.parametrize(("tile", "fill", "chosen"), [(0.5, 0.4, "tile"), (0.4, 0.5, "fill"), (0.5, 0.5, "tile")])
def test_mat_is_kept_unless_the_fill_scores_higher(tmp_path, tiny_shards, monkeypatch, tile, fill, chosen):
    final = write_tiny_export(tmp_path / "final")
    scores = {"tile": tile, "fill": fill}
    monkeypatch.setattr(mode_choice, "score_mode", lambda _dir, _samples, mode, _device: {"score": scores[mode]})
    best, _ = mode_choice.choose_inpaint_mode(final, tiny_data(tiny_shards), torch.device("cpu"), 4)
    assert best == chosen
    assert load_pipeline([final]).inpaint_mode == chosen
