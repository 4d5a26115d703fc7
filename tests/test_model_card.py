"""The model card says what the trainer left next to the weights, and says so when something is missing."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from conftest import write_tiny_export

from restoration.model_card import description, model_card
from restoration.weights import record_inference


def trained_run(root: Path) -> Path:
    """A run directory as training leaves it: `config.yaml`, `final/` with the settings table and the anchors' scores,
    and the shards (with their manifest) that `data.root` names."""
    shards = root / "shards"
    shards.mkdir(parents=True)
    (shards / "manifest.json").write_text(json.dumps({"totals": {"train": 120, "val": 30, "rejected": 2}}))
    run = root / "runs" / "joint"
    final = write_tiny_export(run / "final")
    record_inference(final, inpaint_mode="fill", chroma_scale=0.75)
    config = {
        "stage": "joint",
        "run": {"output_dir": str(root / "runs")},
        "data": {"root": str(shards), "image_size": 64},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    scores = {
        "tile": {"S": 0.5, "M": 0.2, "C": 0.3, "score": 0.3},
        "fill, chroma x0.75": {"S": 0.6, "M": 0.3, "C": 0.35, "score": 0.38},
    }
    chosen = {"inpaint_mode": "fill", "color_mode": "resize", "chroma_scale": 0.75, "chroma_flip": False}
    (final / "inference_settings.json").write_text(json.dumps({"chosen": chosen, "split": "val", "scores": scores}))
    anchors = {"input": {"S": 0.4, "M": 0.0, "C": 0.1, "score": 0.12}, "true_gray": {"S": 0.9, "M": 0.8, "C": 0.2,
                                                                                      "score": 0.58}}  # fmt: skip
    (final / "val_anchors.json").write_text(json.dumps({"split": "val", "images": 30, "scores": anchors}))
    return final


def test_the_card_of_a_trained_run_has_its_networks_settings_data_and_scores(tmp_path):
    card = model_card([trained_run(tmp_path)])
    assert card.startswith("# Restoration model: masked grayscale photo -> colour photo")
    assert "score = 0.2 S + 0.4 M + 0.4 C" in card
    assert "`mat_G` (inpainter)" in card
    assert "window 64 px" in card
    assert "`color_G` (colorizer)" in card
    assert "`fill, chroma x0.75` (`inpaint_mode=fill`" in card  # the recorded defaults
    assert f"- shards: `{tmp_path / 'shards'}`" in card
    assert "120 train, 30 val, 2 rejected" in card
    assert "| fill, chroma x0.75 | 0.6000 | 0.3000 | 0.3500 | 0.3800 | default |" in card
    assert "| tile | 0.5000 | 0.2000 | 0.3000 | 0.3000 |  |" in card
    assert "on the same val split, 30 images" in card
    assert "| `true_gray` | 0.9000 | 0.8000 | 0.2000 | 0.5800 |" in card
    assert "Trained on 64 px crops" in card


def test_a_card_says_what_is_missing_instead_of_failing(tmp_path):
    card = model_card([write_tiny_export(tmp_path / "final")])  # no run config, no tables
    assert "Not recorded with these weights" in card
    assert "No `inference_settings.json` with these weights" in card
    assert "No `val_anchors.json` with these weights" in card


def test_the_builtin_demo_data_is_found_next_to_the_runs(tmp_path):
    final = trained_run(tmp_path)
    config = yaml.safe_load((final.parent / "config.yaml").read_text())
    config["data"]["root"] = "builtin"
    config["run"]["output_dir"] = "runs"  # relative to where training ran, not to here
    (final.parent / "config.yaml").write_text(yaml.safe_dump(config))
    builtin = tmp_path / "runs" / "demo-data" / "builtin-64" / "shards"
    builtin.mkdir(parents=True)
    (builtin / "manifest.json").write_text(json.dumps({"totals": {"train": 154, "val": 70, "rejected": 0}}))
    card = model_card([final])
    assert "the photos bundled with scikit-image" in card
    assert "154 train, 70 val, 0 rejected" in card


def test_a_long_card_is_cut_at_a_section_for_the_registry():
    card = "# title\n\nintro\n\n## one\n\n" + "x" * 3000 + "\n\n## two\n\n" + "y" * 3000 + "\n"
    short = description(card, limit=5000)
    assert len(short) <= 5000
    assert "## one" in short
    assert "## two" not in short
    assert short.endswith("the whole card is `MODEL_CARD.md` in the model's files.)\n")
    assert description("short", limit=5000) == "short"
