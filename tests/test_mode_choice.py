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
    chosen, results = mode_choice.choose_inference(final, data, torch.device("cpu"), 100)
    # random MAT weights paint noise into the hole; the fill is smooth: M tells them apart
    assert results["fill"]["M"] > results["tile"]["M"] + 0.05
    assert chosen["inpaint_mode"] == "fill"
    assert chosen["chroma_scale"] in mode_choice.CHROMA_SCALES
    # every chroma strength was scored on the chosen inpaint mode, and the chosen one scores best
    scales = {1.0: results["fill"], **{s: results[f"fill, chroma x{s:g}"] for s in mode_choice.CHROMA_SCALES[1:]}}
    assert scales[chosen["chroma_scale"]]["score"] == max(r["score"] for r in scales.values())
    recorded = json.loads((final / "pipeline.json").read_text())["inference"]
    assert recorded == chosen
    table = json.loads((final / mode_choice.RESULT_FILE).read_text())
    assert table["chosen"] == chosen
    assert table["samples"] == len(mode_choice.val_samples(data, 100)) > 1  # the whole val split
    pipeline = load_pipeline([final])
    assert (pipeline.inpaint_mode, pipeline.chroma_scale) == ("fill", chosen["chroma_scale"])


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


@pytest.mark.parametrize(
    ("tile", "fill", "half", "chosen"),
    [(0.5, 0.4, 0.4, {"inpaint_mode": "tile", "chroma_scale": 1.0}),
     (0.4, 0.5, 0.6, {"inpaint_mode": "fill", "chroma_scale": 0.5}),
     (0.5, 0.5, 0.5, {"inpaint_mode": "tile", "chroma_scale": 1.0})],
)  # fmt: skip
def test_ties_keep_mat_and_full_color(tmp_path, tiny_shards, monkeypatch, tile, fill, half, chosen):
    final = write_tiny_export(tmp_path / "final")

    def fake_score(_dir, _samples, _device, *, inpaint_mode, chroma_scale=1.0):
        base = {"tile": tile, "fill": fill}[inpaint_mode]
        return {"score": half if chroma_scale == 0.5 else base - (1 - chroma_scale) * 0.01}

    monkeypatch.setattr(mode_choice, "score_setting", fake_score)
    got, _ = mode_choice.choose_inference(final, tiny_data(tiny_shards), torch.device("cpu"), 4)
    assert got == chosen
    assert load_pipeline([final]).inpaint_mode == chosen["inpaint_mode"]


def test_an_export_without_colorizer_gets_no_chroma_scale(tmp_path, tiny_shards):
    final = write_tiny_export(tmp_path / "final", ("mat_G",))
    chosen, results = mode_choice.choose_inference(final, tiny_data(tiny_shards), torch.device("cpu"), 8)
    assert set(chosen) == {"inpaint_mode"}
    assert set(results) == {"tile", "fill"}
