"""`restoration-predict`: contest layout in, submission zip out; odd inputs never stop the run."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import numpy as np
from conftest import make_contest_folder
from PIL import Image

from restoration.predict import main


def odd_contest_folder(tmp_path: Path) -> Path:
    """Four good inputs plus an RGB one, one of another size and a corrupt file, all listed in test.csv."""
    root = make_contest_folder(tmp_path / "contest", count=4)
    inputs = root / "test_input"
    rgb = np.asarray(Image.open(root / "gt" / "TEST_000.png")).copy()
    Image.fromarray(rgb).save(inputs / "RGB_001.png")
    odd = np.asarray(Image.open(inputs / "TEST_001.png"))[:50, :40]
    Image.fromarray(odd).save(inputs / "SMALL_002.png")
    (inputs / "BROKEN_003.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with open(root / "test.csv", "a") as fh:
        fh.write("./test_input/RGB_001.png\n./test_input/SMALL_002.png\n./test_input/BROKEN_003.png\n")
    return root


def test_contest_csv_to_submission_zip_with_odd_inputs(tiny_export, tmp_path, capsys):
    root = odd_contest_folder(tmp_path)
    out, sub = tmp_path / "pred", tmp_path / "submission.zip"
    rc = main(["--model", str(tiny_export), "--input", str(root / "test.csv"), "--out", str(out), "--zip", str(sub),
               "--batch-size", "3"])  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "1 color input(s) converted to gray" in printed
    assert "RGB_001.png" in printed
    assert "skipped 1 unreadable input(s)" in printed
    assert "BROKEN_003.png" in printed

    expected = {f"TEST_{i:03d}.png" for i in range(4)} | {"RGB_001.png", "SMALL_002.png"}
    with zipfile.ZipFile(sub) as zf:
        names = zf.namelist()
        assert sorted(names) == sorted(expected)  # flat, named as the inputs, each once
        assert Image.open(zf.open("SMALL_002.png")).size == (40, 50)  # cropped back to the input's size
        assert Image.open(zf.open("TEST_000.png")).mode == "RGB"
    assert {p.name for p in out.glob("*.png")} == expected
    with open(out / "skipped.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1
    assert rows[0]["path"].endswith("BROKEN_003.png")
    assert "not a readable image" in rows[0]["reason"]


def test_strict_fails_on_skipped_inputs_but_keeps_the_rest(tiny_export, tmp_path):
    root = odd_contest_folder(tmp_path)
    rc = main(
        ["--model", str(tiny_export), "--input", str(root / "test.csv"), "--out", str(tmp_path / "p"), "--strict"]
    )
    assert rc == 1
    assert len(list((tmp_path / "p").glob("*.png"))) == 6


def test_folder_input_keeps_relative_names_and_skip_existing_resumes(tiny_export, tmp_path):
    root = make_contest_folder(tmp_path / "contest", count=3)
    out = tmp_path / "p"
    assert main(["--model", str(tiny_export), "--input", str(root / "test_input"), "--out", str(out)]) == 0
    first = out / "TEST_000.png"
    before = first.stat().st_mtime_ns
    (out / "TEST_002.png").unlink()  # as if the run had been killed before its last image
    args = ["--model", str(tiny_export), "--input", str(root / "test_input"), "--out", str(out), "--skip-existing"]
    assert main(args) == 0
    assert first.stat().st_mtime_ns == before
    assert (out / "TEST_002.png").is_file()


def test_clashing_names_in_a_flat_zip_are_refused_before_any_work(tiny_export, tmp_path, capsys):
    a = make_contest_folder(tmp_path / "a", count=1)
    b = make_contest_folder(tmp_path / "b", count=1)
    rc = main(["--model", str(tiny_export), "--input", str(a / "test.csv"), str(b / "test.csv"),
               "--out", str(tmp_path / "p"), "--zip", str(tmp_path / "s.zip")])  # fmt: skip
    assert rc == 2
    assert "TEST_000.png" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_bad_model_and_bad_csv_are_clear_errors(tiny_export, tmp_path, capsys):
    root = make_contest_folder(tmp_path / "c", count=1)
    assert main(["--model", str(tmp_path / "missing"), "--input", str(root / "test.csv")]) == 2
    assert "missing: no such directory" in capsys.readouterr().err
    (tmp_path / "bad.csv").write_text("path\nx.png\n")
    assert main(["--model", str(tiny_export), "--input", str(tmp_path / "bad.csv")]) == 2
    assert "expected a column 'input_image_path'" in capsys.readouterr().err


def test_truncation_flag_changes_only_the_lost_region(tiny_export, tmp_path):
    root = make_contest_folder(tmp_path / "c", count=2)
    for psi in ("0", "1"):
        args = ["--model", str(tiny_export), "--input", str(root / "test_input"), "--out", str(tmp_path / psi)]
        assert main([*args, "--truncation", psi]) == 0
    a = np.asarray(Image.open(tmp_path / "0" / "TEST_000.png")).astype(int)
    b = np.asarray(Image.open(tmp_path / "1" / "TEST_000.png")).astype(int)
    assert not np.array_equal(a, b)
