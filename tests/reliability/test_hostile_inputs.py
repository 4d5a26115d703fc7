"""Hostile inputs (decompression bombs, damaged zips, ambiguous zip names) are reported per file, never a crash."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import pytest
from conftest import make_contest_folder
from fault_images import fake_model, png_claiming_size  # noqa: F401 - a fixture
from PIL import Image

from restoration import evaluate, predict


def test_predict_skips_a_decompression_bomb_and_names_it(tmp_path, fake_model, capsys):  # noqa: F811
    root = make_contest_folder(tmp_path / "c", count=2, size=16)
    png_claiming_size(root / "test_input" / "BOMB.png", 20000, 20000)
    out = tmp_path / "p"
    args = [*fake_model, "--input", str(root / "test_input"), "--out", str(out)]
    assert predict.main(args) == 0
    assert "BOMB.png: over the pixel limit" in capsys.readouterr().out
    with open(out / "skipped.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["path"].endswith("BOMB.png")
    assert "over the pixel limit" in row["reason"]
    assert sorted(p.name for p in out.glob("*.png")) == ["TEST_000.png", "TEST_001.png"]
    assert predict.main([*args, "--strict"]) == 1


@pytest.fixture
def contest(tmp_path) -> Path:
    root = make_contest_folder(tmp_path / "c", count=3, size=16)
    pred = tmp_path / "pred"
    pred.mkdir()
    for path in (root / "gt").glob("*.png"):
        (pred / path.name).write_bytes(path.read_bytes())
    return root


def run_evaluate(pred: Path, root: Path, capsys) -> tuple[int, str, str]:
    rc = evaluate.main(["--pred", str(pred), "--gt", str(root / "gt"), "--input", str(root / "test_input"),
                        "--json", str(pred.parent / "scores.json")])  # fmt: skip
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_evaluate_reports_a_bomb_prediction_or_gt_as_unreadable(contest, tmp_path, capsys):
    pred = tmp_path / "pred"
    png_claiming_size(pred / "TEST_001.png", 20000, 20000)
    rc, out, _ = run_evaluate(pred, contest, capsys)
    assert rc == 1
    assert "not scored: TEST_001: prediction" in out
    assert "TEST_001.png: over the pixel limit" in out
    png_claiming_size(contest / "gt" / "TEST_002.png", 20000, 20000)
    rc, out, _ = run_evaluate(pred, contest, capsys)
    assert rc == 1
    assert "not scored: TEST_002: ground truth" in out


def test_evaluate_names_a_damaged_zip_member(contest, tmp_path, capsys):
    sub = tmp_path / "sub.zip"
    with zipfile.ZipFile(sub, "w", compression=zipfile.ZIP_STORED) as zf:
        for path in sorted((tmp_path / "pred").glob("*.png")):
            zf.write(path, arcname=path.name)
    data = bytearray(sub.read_bytes())
    member = (tmp_path / "pred" / "TEST_001.png").read_bytes()
    start = data.find(member)
    data[start + len(member) // 2] ^= 0xFF  # one flipped byte inside the member: its CRC no longer matches
    sub.write_bytes(bytes(data))
    rc, out, _ = run_evaluate(sub, contest, capsys)
    assert rc == 1
    assert "TEST_001: zip member 'TEST_001.png'" in out
    assert "CRC" in out
    assert "mean of 2" in out


def test_evaluate_refuses_a_zip_with_the_same_name_twice(contest, tmp_path, capsys):
    sub = tmp_path / "sub.zip"
    with zipfile.ZipFile(sub, "w") as zf:
        for path in sorted((tmp_path / "pred").glob("*.png")):
            zf.write(path, arcname=path.name)
        zf.writestr("c/TEST_001.png", Image.new("RGB", (16, 16)).tobytes())
    rc, _, err = run_evaluate(sub, contest, capsys)
    assert rc == 2
    assert "TEST_001.png" in err
    assert "c/TEST_001.png" in err
