"""benchmarks/rechoose.py: a finished run's settings chosen again with this code's rule, recorded in its export."""

from __future__ import annotations

import json

from conftest import TINY_CONFIG, write_tiny_export

from benchmarks.rechoose import rechoose
from restoration.config import load_config, save_yaml
from restoration.inference import RECORDED
from restoration.pipeline import load_pipeline
from restoration.recipe import TrainConfig
from restoration.weights import record_inference


def test_a_run_chooses_again_on_its_val_split_and_records_it(tmp_path, tiny_shards):
    run = tmp_path / "run"
    export = write_tiny_export(run / "final")
    save_yaml(load_config(TrainConfig, TINY_CONFIG, [f"data.root={tiny_shards}"]), run / "config.yaml")
    record_inference(export, inpaint_mode="tile", chroma_scale=3.0)  # what an older rule might have left
    dry = rechoose(run, record=False)
    assert json.loads((export / "pipeline.json").read_text())["inference"]["chroma_scale"] == 3.0  # untouched
    recorded = rechoose(run)
    assert recorded == dry
    assert set(RECORDED) <= set(recorded)
    assert recorded["inpaint_mode"] == "fill"  # random MAT weights never beat the fill
    assert recorded["chroma_scale"] <= 1.0  # a choice among the rule's strengths, not the old 3
    assert load_pipeline([export]).defaults.recorded() == {k: recorded[k] for k in RECORDED}
