"""`restoration-evaluate`: the same numbers as the metric module, from folders, zips, masks or inputs."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_contest_folder
from PIL import Image

from restoration.data.exact_mask import known_from_pair
from restoration.evaluate import main
from restoration.metrics import contest_score, psnr
from restoration.scoring import evaluate_files


@pytest.fixture
def scored_set(tmp_path) -> tuple[Path, Path]:
    """A contest folder and 'predictions': the ground truth with noise and a hue shift (non-trivial scores)."""
    root = make_contest_folder(tmp_path / "contest", count=4)
    pred = tmp_path / "pred"
    pred.mkdir()
    rng = np.random.default_rng(1)
    for path in sorted((root / "gt").glob("*.png")):
        gt = np.asarray(Image.open(path)).astype(int)
        noisy = np.clip(gt[..., [1, 2, 0]] + rng.integers(-20, 21, gt.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(pred / path.name)
    return root, pred


def reference(root: Path, pred: Path) -> dict[str, dict[str, float]]:
    out = {}
    for path in sorted((root / "gt").glob("*.png")):
        gt = np.asarray(Image.open(path).convert("RGB"))
        p = np.asarray(Image.open(pred / path.name).convert("RGB"))
        inp = np.asarray(Image.open(root / "test_input" / path.name))
        known, _ = known_from_pair(inp, np.asarray(Image.open(path).convert("L")))
        to_t = lambda a: torch.from_numpy(a.copy()).permute(2, 0, 1)[None]  # noqa: E731
        parts = contest_score(to_t(p), to_t(gt), torch.from_numpy(known)[None, None])
        out[path.stem] = {k: float(v[0]) for k, v in parts.items()} | {"psnr": float(psnr(to_t(p), to_t(gt))[0])}
    return out


def test_scores_equal_the_metric_module_from_inputs_masks_and_zip(scored_set, tmp_path):
    root, pred = scored_set
    expected = reference(root, pred)
    from_inputs = evaluate_files(pred, root / "gt", inputs=[str(root / "test_input")])
    assert from_inputs["count"] == 4
    assert not from_inputs["missing"]
    assert not from_inputs["errors"]
    for row in from_inputs["images"]:
        for key in ("S", "M", "C", "score", "psnr"):
            assert row[key] == pytest.approx(expected[row["name"]][key], abs=1e-12)
    assert from_inputs["mean"]["score"] == pytest.approx(np.mean([e["score"] for e in expected.values()]))

    masks = tmp_path / "masks"
    masks.mkdir()
    for row in from_inputs["images"]:
        inp = np.asarray(Image.open(root / "test_input" / f"{row['name']}.png"))
        known, _ = known_from_pair(inp, np.asarray(Image.open(root / "gt" / f"{row['name']}.png").convert("L")))
        Image.fromarray(((1 - known) * 255).astype(np.uint8)).save(masks / f"{row['name']}.png")  # white = lost
    from_masks = evaluate_files(pred, root / "gt", masks=masks)
    assert from_masks["mean"] == pytest.approx(from_inputs["mean"])
    inverted = evaluate_files(pred, root / "gt", masks=masks, mask_white="known")
    assert inverted["mean"]["M"] != pytest.approx(from_inputs["mean"]["M"])

    sub = tmp_path / "submission.zip"
    with zipfile.ZipFile(sub, "w") as zf:
        for path in pred.glob("*.png"):
            zf.write(path, arcname=path.name)
    from_zip = evaluate_files(sub, root / "gt", inputs=[str(root / "test.csv")])
    assert from_zip["mean"] == pytest.approx(from_inputs["mean"])


def test_cli_writes_json_and_csv_and_flags_missing_and_bad_predictions(scored_set, tmp_path, capsys):
    root, pred = scored_set
    (pred / "TEST_003.png").unlink()
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(pred / "TEST_002.png")  # wrong size
    out = tmp_path / "scores.json"
    rc = main(["--pred", str(pred), "--gt", str(root / "gt"), "--input", str(root / "test.csv"), "--json", str(out)])
    assert rc == 1
    printed = capsys.readouterr().out
    assert "mean of 2" in printed
    assert "missing predictions for 1" in printed
    assert "TEST_002: size 10x10" in printed
    result = json.loads(out.read_text())
    assert result["count"] == 2
    assert result["missing"] == ["TEST_003"]
    assert out.with_suffix(".csv").read_text().count("\n") == 3  # header + 2 images
    (pred / "TEST_002.png").unlink()
    args = ["--pred", str(pred), "--gt", str(root / "gt"), "--input", str(root / "test_input"), "--json", str(out)]
    assert main([*args, "--allow-missing"]) == 0


def test_cli_logs_the_means_to_mlflow(scored_set, tmp_path):
    from mlflow.tracking import MlflowClient

    root, pred = scored_set
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    rc = main(["--pred", str(pred), "--gt", str(root / "gt"), "--input", str(root / "test_input"),
               "--json", str(tmp_path / "s.json"), "--mlflow-experiment", "evals", "--tracking-uri", uri])  # fmt: skip
    assert rc == 0
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("evals").experiment_id])
    expected = json.loads((tmp_path / "s.json").read_text())["mean"]["score"]
    assert run.data.metrics["eval/score"] == pytest.approx(expected)


def test_missing_mask_source_is_a_usage_error(scored_set):
    root, pred = scored_set
    with pytest.raises(SystemExit):
        main(["--pred", str(pred), "--gt", str(root / "gt")])
