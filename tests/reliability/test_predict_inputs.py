"""Prediction's inputs: no output overwrites another, only regular files are opened (a FIFO never hangs a run), and
file names that are not UTF-8 reach skipped.csv, rejected.csv and the zip as the file system gives them."""

from __future__ import annotations

import csv
import os
import signal
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_contest_folder
from fault_images import contest_pairs, fake_model  # noqa: F401 - a fixture
from PIL import Image

from restoration import evaluate, predict
from restoration.data.shard_build import build
from restoration.pipeline import image_generator

BAD = os.fsdecode(b"bad\xff")  # a name that is not UTF-8: Python holds it as a surrogate escape


class Hung(BaseException):
    """Not an Exception: a reader's `except Exception` must not swallow it and go on to the next FIFO."""


@pytest.fixture
def no_hang():
    """Fail (instead of waiting forever) when the test blocks, e.g. reading a FIFO nobody writes."""

    def expired(signum, frame):
        raise Hung("blocked for 20 s: a FIFO was opened for reading?")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def gray_png(path: Path, value: int, size: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), value, np.uint8)).save(path)
    return path


def read_report(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as fh:
        return list(csv.DictReader(fh))


# -- 1. no output is lost to another input's name ------------------------------------------------------------------


def test_same_file_name_in_two_csv_folders_keeps_both_outputs(tmp_path, fake_model, capsys):  # noqa: F811
    data = tmp_path / "data"
    gray_png(data / "a" / "img.png", 40)
    gray_png(data / "b" / "img.png", 200)
    gray_png(data / "a" / "other.png", 90)
    (data / "test.csv").write_text("input_image_path\n./a/img.png\n./b/img.png\n./a/other.png\n")
    out = tmp_path / "p"
    assert predict.main([*fake_model, "--input", str(data / "test.csv"), "--out", str(out)]) == 0
    assert "restored 3 image(s)" in capsys.readouterr().out
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == ["a/img.png", "b/img.png", "other.png"]  # the colliding pair in its folders, the rest flat
    assert np.asarray(Image.open(out / "a" / "img.png"))[0, 0, 0] == 40
    assert np.asarray(Image.open(out / "b" / "img.png"))[0, 0, 0] == 200


def test_same_name_in_two_folders_and_two_suffixes_keeps_every_output(tmp_path, fake_model, capsys):  # noqa: F811
    gray_png(tmp_path / "x" / "img.png", 1)
    gray_png(tmp_path / "y" / "img.png", 2)
    gray_png(tmp_path / "y" / "pic.png", 3)
    Image.fromarray(np.full((16, 16), 4, np.uint8)).save(tmp_path / "y" / "pic.bmp")  # also an output 'pic.png'
    out = tmp_path / "p"
    args = [*fake_model, "--input", str(tmp_path / "x"), str(tmp_path / "y"), "--out", str(out)]
    assert predict.main(args) == 0
    assert "restored 4 image(s)" in capsys.readouterr().out
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == ["x/img.png", "y/img.png", "y/pic.bmp.png", "y/pic.png"]


def test_zip_still_refuses_colliding_names_before_writing(tmp_path, fake_model, capsys):  # noqa: F811
    data = tmp_path / "data"
    gray_png(data / "a" / "img.png", 40)
    gray_png(data / "b" / "img.png", 200)
    (data / "test.csv").write_text("input_image_path\n./a/img.png\n./b/img.png\n")
    out = tmp_path / "p"
    rc = predict.main(
        [*fake_model, "--input", str(data / "test.csv"), "--out", str(out), "--zip", str(tmp_path / "s.zip")]
    )
    assert rc == 2
    assert "img.png" in capsys.readouterr().err
    assert not list(out.rglob("*.png"))
    assert not (tmp_path / "s.zip").exists()


def test_names_that_still_collide_are_refused_naming_the_inputs(tmp_path, fake_model, capsys):  # noqa: F811
    gray_png(tmp_path / "one" / "a" / "img.png", 1)
    gray_png(tmp_path / "two" / "a" / "img.png", 2)
    (tmp_path / "one" / "list.csv").write_text("input_image_path\na/img.png\n")
    (tmp_path / "two" / "list.csv").write_text("input_image_path\na/img.png\n")
    out = tmp_path / "p"
    args = [*fake_model, "--input", str(tmp_path / "one" / "list.csv"), str(tmp_path / "two" / "list.csv")]
    assert predict.main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "a/img.png" in err
    assert "one" in err
    assert "two" in err
    assert not list(out.rglob("*.png"))


def test_a_csv_path_going_up_stays_inside_out(tmp_path, fake_model):  # noqa: F811
    gray_png(tmp_path / "img.png", 5)
    gray_png(tmp_path / "csvdir" / "img.png", 6)
    (tmp_path / "csvdir" / "test.csv").write_text("input_image_path\n../img.png\nimg.png\n")
    out = tmp_path / "p"
    assert predict.main([*fake_model, "--input", str(tmp_path / "csvdir" / "test.csv"), "--out", str(out)]) == 0
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == ["__/img.png", "img.png"]


# -- 2. only regular files are read -------------------------------------------------------------------------------


def test_fifos_and_dangling_links_are_listed_in_skipped_csv_never_opened(tmp_path, fake_model, no_hang, capsys):  # noqa: F811
    folder = tmp_path / "in"
    gray_png(folder / "good.png", 10)
    os.mkfifo(folder / "pipe.png")
    (folder / "gone.png").symlink_to(tmp_path / "nowhere.png")
    os.mkfifo(tmp_path / "single.png")
    os.mkfifo(tmp_path / "row.png")
    (tmp_path / "test.csv").write_text("input_image_path\nrow.png\n")
    out = tmp_path / "p"
    args = [*fake_model, "--input", str(folder), str(tmp_path / "single.png"), str(tmp_path / "test.csv")]
    assert predict.main([*args, "--out", str(out)]) == 0
    assert "restored 1 image(s)" in capsys.readouterr().out
    reasons = {Path(r["path"]).name: r["reason"] for r in read_report(out / "skipped.csv")}
    assert set(reasons) == {"pipe.png", "gone.png", "single.png", "row.png"}
    assert "FIFO" in reasons["pipe.png"]
    assert "FIFO" in reasons["single.png"]
    assert "FIFO" in reasons["row.png"]
    assert "dangling symbolic link" in reasons["gone.png"]
    assert predict.main([*args, "--out", str(out), "--strict"]) == 1


def test_shard_listing_rejects_fifos_and_dangling_links(tmp_path, no_hang):
    photos = tmp_path / "photos"
    for i in range(3):
        Image.fromarray(np.full((24, 24, 3), 50 * i, np.uint8)).save(gray_png(photos / f"p{i}.png", 0))
    os.mkfifo(photos / "pipe.jpg")
    (photos / "gone.png").symlink_to(tmp_path / "nowhere.png")
    manifest = build("photos", photos, tmp_path / "out", size=16, val_fraction=0.0, progress=False)
    assert manifest["totals"]["train"] == 3
    reasons = {r["path"]: r["reason"] for r in read_report(tmp_path / "out" / "rejected.csv")}
    assert "FIFO" in reasons["pipe.jpg"]
    assert "dangling symbolic link" in reasons["gone.png"]

    root = contest_pairs(tmp_path / "contest", 2)
    (root / "train_input" / "TRAIN_00000.png").unlink()
    os.mkfifo(root / "train_input" / "TRAIN_00000.png")
    build("contest", root, tmp_path / "cout", progress=False)
    (row,) = read_report(tmp_path / "cout" / "rejected.csv")
    assert row["path"] == "./train_input/TRAIN_00000.png"
    assert "FIFO" in row["reason"]


def test_evaluate_reports_a_fifo_prediction_instead_of_hanging(tmp_path, no_hang, capsys):
    root = make_contest_folder(tmp_path / "c", count=2, size=16)
    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / "TEST_000.png").write_bytes((root / "gt" / "TEST_000.png").read_bytes())
    os.mkfifo(pred / "TEST_001.png")
    rc = evaluate.main(["--pred", str(pred), "--gt", str(root / "gt"), "--input", str(root / "test_input"),
                        "--json", str(tmp_path / "s.json")])  # fmt: skip
    assert rc == 1
    assert "not scored: TEST_001: prediction" in capsys.readouterr().out


# -- 4. names that are not UTF-8 -----------------------------------------------------------------------------------


def test_non_utf8_names_reach_skipped_csv_and_the_zip_as_bytes(tmp_path, fake_model, capsys):  # noqa: F811
    root = make_contest_folder(tmp_path / "c", count=2, size=16)
    good = root / "test_input" / f"{BAD}.png"
    good.write_bytes((root / "test_input" / "TEST_000.png").read_bytes())
    (root / "test_input" / f"{BAD}2.png").write_bytes(b"not an image")
    out, sub = tmp_path / "p", tmp_path / "s.zip"
    assert predict.main([*fake_model, "--input", str(root / "test_input"), "--out", str(out), "--zip", str(sub)]) == 0
    printed = capsys.readouterr().out
    assert "bad\\xff2.png" in printed  # shown as an escape, not a UnicodeEncodeError
    assert os.fsencode(out / f"{BAD}.png") in [os.fsencode(p) for p in out.iterdir()]
    raw = (out / "skipped.csv").read_bytes()
    assert b"bad\xff2.png" in raw  # the file system's own bytes
    with zipfile.ZipFile(sub) as zf:
        stored = {info.filename.encode("cp437") if not info.flag_bits & 0x800 else info.filename.encode() for info in
                  zf.infolist()}  # fmt: skip
    assert stored == {b"TEST_000.png", b"TEST_001.png", b"bad\xff.png"}

    gt = root / "gt"
    (gt / f"{BAD}.png").write_bytes((gt / "TEST_000.png").read_bytes())
    rc = evaluate.main(["--pred", str(sub), "--gt", str(gt), "--input", str(root / "test_input"),
                        "--json", str(tmp_path / "scores.json")])  # fmt: skip
    assert rc == 0  # the zip's raw name matches the ground truth's
    assert "mean of 3" in capsys.readouterr().out
    assert b"bad\xff," in (tmp_path / "scores.csv").read_bytes()


def test_non_utf8_names_reach_rejected_csv_as_bytes(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.full((24, 24, 3), 80, np.uint8)).save(photos / "ok.png")
    (photos / f"{BAD}.png").write_bytes(b"not an image")
    build("photos", photos, tmp_path / "out", size=16, val_fraction=0.0, progress=False)
    assert b"bad\xff.png" in (tmp_path / "out" / "rejected.csv").read_bytes()


def test_a_non_utf8_key_seeds_its_draws():
    draws = [torch.rand(3, generator=image_generator(0, BAD, 0, torch.device("cpu"))) for _ in range(2)]
    assert torch.equal(*draws)


def test_inputs_none_of_which_is_an_image_exit_1_saying_so(tmp_path, fake_model, capsys):  # noqa: F811
    text = tmp_path / "README.md"
    text.write_text("# not an image\n")
    assert predict.main([*fake_model, "--input", str(text), "--out", str(tmp_path / "out")]) == 1
    captured = capsys.readouterr()
    assert "error: no image restored: none of the 1 input(s) could be read as an image" in captured.err
    assert f"{text}: not a readable image" in captured.out
