"""Scoring edge cases: constant (all-black, all-white) photos score 1 when predicted perfectly, an image that
cannot be scored is listed in `errors` and never averaged, and the mean is never NaN."""

from __future__ import annotations

import json
import math
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_contest_folder
from PIL import Image

from restoration import evaluate
from restoration.metrics import contest_score, score_image
from restoration.scoring import evaluate_files


def write_pair(root: Path, name: str, gt: np.ndarray, hole: tuple[slice, slice], fill: int) -> None:
    """A contest pair: `gt/<name>.png` and `test_input/<name>.png` (its gray with `hole` set to `fill`)."""
    (root / "gt").mkdir(parents=True, exist_ok=True)
    (root / "test_input").mkdir(exist_ok=True)
    Image.fromarray(gt).save(root / "gt" / f"{name}.png")
    gray = np.asarray(Image.fromarray(gt).convert("L")).copy()
    gray[hole] = fill
    Image.fromarray(gray).save(root / "test_input" / f"{name}.png")


def perfect_predictions(root: Path) -> Path:
    pred = root.parent / "pred"
    pred.mkdir()
    for path in (root / "gt").glob("*.png"):
        (pred / path.name).write_bytes(path.read_bytes())
    return pred


def run_evaluate(pred: Path, root: Path, capsys) -> tuple[int, str, str, dict]:
    json_path = pred.parent / "scores.json"
    rc = evaluate.main(["--pred", str(pred), "--gt", str(root / "gt"), "--input", str(root / "test_input"),
                        "--json", str(json_path)])  # fmt: skip
    captured = capsys.readouterr()
    report = json.loads(json_path.read_text()) if json_path.exists() else {}
    return rc, captured.out, captured.err, report


@pytest.mark.parametrize("value", [0, 255, 77])
def test_identical_constant_images_score_one(value):
    gt = torch.full((1, 3, 24, 24), value, dtype=torch.uint8)
    known = torch.ones(1, 1, 24, 24)
    known[..., 5:15, 6:18] = 0
    parts = contest_score(gt, gt, known)
    for key in ("S", "M", "C", "score"):
        assert float(parts[key][0]) == 1.0, key


def test_constant_predictions_of_other_images_stay_low():
    black = np.zeros((24, 24, 3), np.uint8)
    white = np.full((24, 24, 3), 255, np.uint8)
    known = np.ones((24, 24), np.uint8)
    known[4:12, 4:12] = 0
    scores = score_image(black, white, known)  # flat windows of different values: luminance factor 0
    assert scores["S"] == 0.0
    assert scores["M"] == 0.0
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    scores = score_image(np.full_like(photo, 128), photo, known)  # a constant answer to a photo: 0, as skimage
    assert all(math.isfinite(v) for v in scores.values())
    assert abs(scores["S"]) < 0.01
    assert abs(scores["M"]) < 0.01


def test_evaluate_scores_perfect_black_and_white_photos_as_one(tmp_path, capsys):
    root = tmp_path / "contest"
    write_pair(root, "BLACK", np.zeros((32, 32, 3), np.uint8), (slice(8, 20), slice(6, 22)), fill=128)
    write_pair(root, "WHITE", np.full((32, 40, 3), 255, np.uint8), (slice(3, 15), slice(10, 30)), fill=90)
    pred = perfect_predictions(root)
    rc, out, err, report = run_evaluate(pred, root, capsys)
    assert rc == 0, err
    assert "nan" not in out.lower()
    assert report["count"] == 2
    assert report["errors"] == []
    for row in report["images"]:
        assert 0 < row["lost_fraction"] < 0.5  # the lost region was found, M is over it
        for key in ("S", "M", "C", "score"):
            assert row[key] == 1.0, (row["name"], key)
    assert report["mean"]["score"] == 1.0
    assert "NaN" not in (pred.parent / "scores.json").read_text()


def test_an_image_that_cannot_be_scored_is_listed_not_averaged(tmp_path, capsys):
    root = tmp_path / "contest"
    rng = np.random.default_rng(1)
    write_pair(root, "PHOTO", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), (slice(4, 14), slice(4, 14)), 7)
    write_pair(root, "TINY", rng.integers(0, 256, (5, 9, 3), dtype=np.uint8), (slice(1, 3), slice(1, 4)), 7)
    pred = perfect_predictions(root)
    rc, out, err, report = run_evaluate(pred, root, capsys)
    assert rc == 1, err
    assert "Traceback" not in out + err
    assert "not scored: TINY: S is not defined for an image smaller than the 7x7 SSIM window" in out
    assert report["count"] == 1
    assert report["mean"]["score"] == 1.0
    assert "nan" not in out.lower()


# -- a zip member that unpacks to far more than any image: refused before it is read ------------------------------

ZEROS = 256 << 20  # bytes of the bomb member: 256 MiB of zeros deflate to ~1 MB


def write_submission(sub: Path, pred: Path, bomb: str) -> None:
    """A submission zip of the PNGs in `pred`, with member `bomb` replaced by ZEROS zero bytes (deflated)."""
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(sub, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for path in sorted(pred.glob("*.png")):
            if path.name != bomb:
                zf.write(path, arcname=path.name)
        with zf.open(bomb, "w") as fh:
            for _ in range(ZEROS // len(chunk)):
                fh.write(chunk)


def lie_about_size(sub: Path, member: str, declared: int) -> None:
    """Rewrite `member`'s uncompressed size in its local header and the central directory to `declared`."""
    with zipfile.ZipFile(sub) as zf:
        info = zf.getinfo(member)
    data = bytearray(sub.read_bytes())
    local = info.header_offset
    assert data[local : local + 4] == b"PK\x03\x04"
    struct.pack_into("<I", data, local + 22, declared)
    central = data.find(b"PK\x01\x02")
    while data[central + 46 : central + 46 + len(member)] != member.encode():
        central = data.find(b"PK\x01\x02", central + 4)
        assert central != -1
    struct.pack_into("<I", data, central + 24, declared)
    sub.write_bytes(bytes(data))


@pytest.fixture
def small_limit(monkeypatch) -> int:
    """A pixel limit of 10,000 pixels: zip members are capped at 4 bytes a pixel + 1 MiB."""
    monkeypatch.setenv("RESTORATION_MAX_PIXELS", "10000")
    return 40_000 + (1 << 20)


def evaluate_with_peak(sub: Path, root: Path) -> tuple[dict, int]:
    tracemalloc.start()
    try:
        result = evaluate_files(sub, root / "gt", inputs=[str(root / "test_input")])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, peak


def test_a_zip_member_bigger_than_any_image_is_refused_before_reading(tmp_path, small_limit, capsys):
    root = make_contest_folder(tmp_path / "c", count=3, size=16)
    pred = perfect_predictions(root)
    sub = tmp_path / "sub.zip"
    write_submission(sub, pred, "TEST_001.png")
    assert sub.stat().st_size < 2 << 20
    result, peak = evaluate_with_peak(sub, root)
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB"
    assert result["count"] == 2
    (error,) = result["errors"]
    assert error["name"] == "TEST_001"
    assert error["error"] == (
        f"zip member 'TEST_001.png' of {sub}: unpacks to {ZEROS:,} bytes, over the {small_limit:,}-byte limit for one "
        "image (4 bytes a pixel at RESTORATION_MAX_PIXELS plus 1 MiB)"
    )
    rc, out, err, _ = run_evaluate(sub, root, capsys)
    assert rc == 1
    assert f"not scored: TEST_001: zip member 'TEST_001.png' of {sub}: unpacks to {ZEROS:,} bytes, over" in out
    assert "mean of 2" in out


def test_a_zip_member_lying_about_its_size_is_read_no_further_than_the_limit(tmp_path, small_limit):
    root = make_contest_folder(tmp_path / "c", count=3, size=16)
    pred = perfect_predictions(root)
    sub = tmp_path / "sub.zip"
    write_submission(sub, pred, "TEST_002.png")
    lie_about_size(sub, "TEST_002.png", 1000)
    result, peak = evaluate_with_peak(sub, root)
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB"
    assert result["count"] == 2
    (error,) = result["errors"]
    assert error["name"] == "TEST_002"
    assert error["error"].startswith(f"zip member 'TEST_002.png' of {sub}: damaged")
