"""Validation during training restores through the pipeline and chooses the export's settings on the val split."""

from __future__ import annotations

import pytest
import torch
from accelerate import Accelerator
from conftest import TINY_CONFIG, write_tiny_export

from restoration.config import load_config
from restoration.data.shards import make_val_loader
from restoration.inference import CHROMA_FLOORS, CHROMA_SCALES, VS_FILL, InferenceSettings
from restoration.pipeline import load_pipeline
from restoration.recipe import TrainConfig
from restoration.validation import PANEL_COLUMNS, choose, evaluate


@pytest.fixture
def val(tiny_shards):
    data = load_config(TrainConfig, TINY_CONFIG, [f"data.root={tiny_shards}"]).data
    return data, make_val_loader(data, batch_size=4, rank=0, world_size=1)


def test_an_untrained_mat_loses_to_the_classical_fill_and_the_fill_is_chosen(tmp_path, val):
    data, loader = val
    pipeline = load_pipeline([write_tiny_export(tmp_path / "final")], torch.device("cpu"))
    chosen, results, panels = choose(pipeline, loader, Accelerator(cpu=True), data, num_panels=2)
    # random MAT weights paint noise into the hole; the fill is smooth: M tells them apart
    assert results["fill"]["M"] > results["tile"]["M"] + 0.02
    assert chosen.inpaint_mode == "fill"
    assert chosen.chroma_scale in CHROMA_SCALES
    scales = [results[InferenceSettings(inpaint_mode="fill", chroma_scale=s).label()] for s in CHROMA_SCALES]
    floors = [results[chosen.but(chroma_floor=f).label()] for f in CHROMA_FLOORS]  # tried on the best scale
    assert max(r["score"] for r in floors) >= max(r["score"] for r in scales)
    assert results[chosen.label()]["score"] == max(r["score"] for r in floors)
    assert results["fill"]["samples"] > 1  # the whole val split
    assert results["tile"][VS_FILL] < 0  # the bound the rule saw, recorded with MAT's scores
    per_image: dict[str, float] = {}
    scores, _ = evaluate(pipeline, chosen, loader, Accelerator(cpu=True), data, per_image=per_image)
    assert len(per_image) == scores["samples"]  # one score per val image, by its sample key
    assert sum(per_image.values()) / len(per_image) == pytest.approx(scores["score"])
    assert len(panels) == 2
    assert panels[0].shape == (64, 64 * len(PANEL_COLUMNS), 3)


def test_a_detector_only_pipeline_scores_its_masks_and_has_nothing_to_choose(tmp_path, val):
    data, loader = val
    export = write_tiny_export(tmp_path / "final", ("mat_G", "detector"))
    pipeline = load_pipeline([export], torch.device("cpu"))
    pipeline.networks.pop("inpainter")
    assert not pipeline.has_choices
    scores, _ = evaluate(pipeline, pipeline.defaults, loader, Accelerator(cpu=True), data, scores_masks=True)
    assert 0.0 <= scores["mask_iou"] <= 1.0
    assert scores["samples"] > 1
    chosen, results, _ = choose(pipeline, loader, Accelerator(cpu=True), data, scores_masks=True)
    assert chosen == pipeline.defaults
    assert list(results) == [chosen.label()]
