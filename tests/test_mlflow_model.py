"""The pipeline as an MLflow pyfunc model: saved, logged, registered, loaded and predicting; and the export CLI."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import make_contest_folder
from PIL import Image

from restoration.export import main as export_main
from restoration.mlflow_model import save_pipeline_model
from restoration.pipeline import load_pipeline
from restoration.tracking import fluent_mlflow


def decode(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


@pytest.fixture(scope="module")
def saved_model(tiny_export, tmp_path_factory) -> Path:
    return save_pipeline_model([tiny_export], tmp_path_factory.mktemp("mlmodel") / "model")


def test_saved_model_predicts_like_the_pipeline_from_bytes_base64_and_paths(saved_model, tiny_export, tmp_path):
    root = make_contest_folder(tmp_path / "c", count=3)
    files = sorted((root / "test_input").glob("*.png"))
    model = mlflow.pyfunc.load_model(str(saved_model))
    assert {c.name for c in model.metadata.get_input_schema().inputs} == {"image", "path"}
    frame = pd.DataFrame(
        {
            "image": [files[0].read_bytes(), base64.b64encode(files[1].read_bytes()).decode(), None],
            "path": [None, None, str(files[2])],
        }
    )
    out = model.predict(frame, params={"seed": 0, "batch_size": 8})
    assert list(out.columns) == ["image", "width", "height", "lost_fraction", "mask_source"]
    assert list(out["mask_source"]) == ["exact"] * 3
    expected = load_pipeline([tiny_export]).restore([np.asarray(Image.open(f)) for f in files], seed=0)
    for b64, result in zip(out["image"], expected):
        assert np.array_equal(decode(b64), result.rgb)
    with pytest.raises(Exception, match="row 0"):
        model.predict(pd.DataFrame({"image": [b"not an image"]}))


def test_mlflow_models_predict_cli_on_a_csv_of_paths(saved_model, tmp_path):
    root = make_contest_folder(tmp_path / "c", count=2)
    listing = tmp_path / "images.csv"
    listing.write_text("path\n" + "".join(f"{p}\n" for p in sorted((root / "test_input").glob("*.png"))))
    out = tmp_path / "out.json"
    cmd = [sys.executable, "-m", "mlflow", "models", "predict", "-m", str(saved_model), "-i", str(listing),
           "-t", "csv", "--env-manager", "local", "-o", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    predictions = json.loads(out.read_text())["predictions"]
    assert len(predictions) == 2
    assert decode(predictions[0]["image"]).shape == (64, 64, 3)


def test_export_logs_registers_and_the_model_loads_by_name(tiny_export, tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    rc = export_main(["--model", str(tiny_export), "--tracking-uri", uri, "--experiment", "exports",
                      "--register", "tiny-pipeline"])  # fmt: skip
    assert rc == 0
    assert "logged the pyfunc model into run" in capsys.readouterr().out
    with fluent_mlflow(uri):
        model = mlflow.pyfunc.load_model("models:/tiny-pipeline/1")
    root = make_contest_folder(tmp_path / "c", count=1)
    out = model.predict(pd.DataFrame({"path": [str(root / "test_input" / "TEST_000.png")]}))
    assert decode(out["image"][0]).shape == (64, 64, 3)


def test_export_refuses_an_existing_out_dir_and_a_directory_without_weights(tiny_export, tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    assert export_main(["--model", str(tiny_export), "--out", str(tmp_path / "taken")]) == 2
    assert "already exists" in capsys.readouterr().err
    detector_only = tmp_path / "det"
    from conftest import write_tiny_export

    write_tiny_export(detector_only, ("detector",))
    assert export_main(["--model", str(detector_only), "--out", str(tmp_path / "m")]) == 2
    assert "no inpainter, colorizer or baseline" in capsys.readouterr().err
