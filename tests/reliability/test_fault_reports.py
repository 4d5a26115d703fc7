"""Messages name the file at fault and the counts say what happened (--strict, --skip-existing, BOM csvs)."""

from __future__ import annotations

import csv

import pytest
from conftest import make_contest_folder
from fault_images import contest_pairs, fake_model  # noqa: F401 - a fixture

from restoration import evaluate, predict
from restoration.data.shard_build import build
from restoration.data.shard_sources import BuildError


def truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("bad", ["train_input", "train_gt"])
def test_strict_shard_build_names_the_truncated_file_itself(tmp_path, bad):
    root = contest_pairs(tmp_path / "data", 2)
    truncate(root / bad / "TRAIN_00001.png")
    with pytest.raises(BuildError, match=rf"^\./{bad}/TRAIN_00001\.png: not a readable image"):
        build("contest", root, tmp_path / "out", strict=True, progress=False)
    build("contest", root, tmp_path / "out", progress=False)
    with open(tmp_path / "out" / "rejected.csv", newline="") as fh:
        assert [row["path"] for row in csv.DictReader(fh)] == [f"./{bad}/TRAIN_00001.png"]


def test_evaluate_names_the_truncated_input_file(tmp_path, capsys):
    root = make_contest_folder(tmp_path / "c", count=2, size=16)
    truncate(root / "test_input" / "TEST_001.png")
    rc = evaluate.main(["--pred", str(root / "gt"), "--gt", str(root / "gt"), "--input", str(root / "test_input"),
                        "--json", str(tmp_path / "s.json")])  # fmt: skip
    assert rc == 1
    out = capsys.readouterr().out
    assert f"TEST_001: input {root / 'test_input' / 'TEST_001.png'}: not a readable image" in out


def test_skip_existing_counts_kept_and_restored_images_apart(tmp_path, fake_model, capsys):  # noqa: F811
    root = make_contest_folder(tmp_path / "c", count=3, size=16)
    out = tmp_path / "p"
    args = [*fake_model, "--input", str(root / "test.csv"), "--out", str(out), "--zip", str(tmp_path / "s.zip")]
    (root / "test_input" / "TEST_002.png").write_bytes(b"not yet")  # skipped by the first run
    assert predict.main(args) == 0
    assert (out / "skipped.csv").is_file()
    make_contest_folder(tmp_path / "c", count=3, size=16)  # the input fixed: the resumed run restores it
    capsys.readouterr()
    assert predict.main([*args, "--skip-existing"]) == 0
    printed = capsys.readouterr().out
    assert "restored 1 image(s)" in printed
    assert "kept 2 already in" in printed
    assert "submission zip: " in printed
    assert "(3 files)" in printed
    assert not (out / "skipped.csv").exists()  # nothing was skipped by this run


def test_csvs_with_a_utf8_bom_are_read(tmp_path, fake_model, capsys):  # noqa: F811
    root = make_contest_folder(tmp_path / "c", count=2, size=16)
    (root / "test.csv").write_text((root / "test.csv").read_text(), encoding="utf-8-sig")
    assert predict.main([*fake_model, "--input", str(root / "test.csv"), "--out", str(tmp_path / "p")]) == 0
    assert "restored 2 image(s)" in capsys.readouterr().out
    data = contest_pairs(tmp_path / "data", 2)
    (data / "train.csv").write_text((data / "train.csv").read_text(), encoding="utf-8-sig")
    assert build("contest", data, tmp_path / "shards", progress=False)["totals"]["train"] == 2
