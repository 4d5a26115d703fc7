"""Output paths that cannot be written (a file where a folder goes, a read-only folder, a disk filling up) end
restoration-predict, restoration-shards and restoration-evaluate with one line naming the path, never a traceback:
exit 2 before any work, 1 when the run had started writing."""

from __future__ import annotations

import builtins
import errno
import io
import os
from pathlib import Path

import pytest
from conftest import make_contest_folder
from fault_images import fake_model  # noqa: F401 - a fixture

from data_prep import build_shards
from restoration import evaluate, predict


@pytest.fixture
def read_only(monkeypatch):
    """`freeze(folder)`: from then on, creating, writing, renaming or removing anything in `folder` fails with EROFS,
    as on a read-only mount (chmod does not stop root, who runs these tests)."""
    frozen: list[Path] = []

    def inside(path) -> bool:
        if not isinstance(path, (str, bytes, os.PathLike)):
            return False
        p = Path(os.path.abspath(os.fsdecode(path)))
        return any(p == f or f in p.parents for f in frozen)

    def refuse(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))

    real_open, real_os_open = builtins.open, os.open

    def fake_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+") and inside(file):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def fake_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(path):
            refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def guarded(real):
        def call(*paths, **kwargs):
            for path in paths[:2]:
                if inside(path):
                    refuse(path)
            return real(*paths, **kwargs)

        return call

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    for name in ("mkdir", "replace", "rename", "unlink", "remove", "rmdir"):
        monkeypatch.setattr(os, name, guarded(getattr(os, name)))
    return lambda folder: frozen.append(Path(os.path.abspath(folder)))


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


# -- restoration-predict -------------------------------------------------------------------------------------------


@pytest.fixture
def contest(tmp_path) -> Path:
    return make_contest_folder(tmp_path / "c", count=3, size=16)


def run_predict(contest: Path, *extra: str) -> int:
    return predict.main(["--model", "fake", "--input", str(contest / "test.csv"), *extra])


def test_predict_out_naming_a_file(contest, tmp_path, fake_model, capsys):  # noqa: F811
    (tmp_path / "taken").write_text("a file")
    assert run_predict(contest, "--out", str(tmp_path / "taken")) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: --out {tmp_path / 'taken'}: a file is in the way")
    assert run_predict(contest, "--out", str(tmp_path / "taken" / "below")) == 2
    assert "a file is in the way" in one_error_line(capsys)


def test_predict_zip_naming_a_folder(contest, tmp_path, fake_model, capsys):  # noqa: F811
    (tmp_path / "sub.zip").mkdir()
    assert run_predict(contest, "--out", str(tmp_path / "p"), "--zip", str(tmp_path / "sub.zip")) == 2
    assert one_error_line(capsys) == f"error: --zip {tmp_path / 'sub.zip'}: is a folder; give a file path"
    assert not list((tmp_path / "p").glob("*.png"))


def test_predict_read_only_out(contest, tmp_path, fake_model, read_only, capsys):  # noqa: F811
    out = tmp_path / "p"
    out.mkdir()
    read_only(out)
    assert run_predict(contest, "--out", str(out)) == 2
    line = one_error_line(capsys)
    assert line == f"error: --out {out}: cannot write here (Read-only file system); give a writable folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a chmod 0o500 folder (see the read_only variant)")
def test_predict_chmod_read_only_out(contest, tmp_path, fake_model, capsys):  # noqa: F811
    out = tmp_path / "p"
    out.mkdir(mode=0o500)
    try:
        assert run_predict(contest, "--out", str(out)) == 2
        assert "cannot write here (Permission denied)" in one_error_line(capsys)
    finally:
        out.chmod(0o700)


def test_predict_disk_full_during_the_run(contest, tmp_path, fake_model, monkeypatch, capsys):  # noqa: F811
    real, calls = predict.write_png_atomic, []

    def write(array, path):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path.with_name(f".{path.name}.tmp")))
        real(array, path)

    monkeypatch.setattr(predict, "write_png_atomic", write)
    out = tmp_path / "p"
    assert run_predict(contest, "--out", str(out), "--batch-size", "1") == 1
    line = one_error_line(capsys)
    assert line.startswith(f"error: writing {out / '.TEST_001.png.tmp'} failed (No space left on device);")
    assert "rerun the same command with --skip-existing" in line
    assert [p.name for p in out.glob("*.png")] == ["TEST_000.png"]


# -- restoration-shards --------------------------------------------------------------------------------------------


@pytest.fixture
def photos(tmp_path) -> Path:
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (24, 24), (40 * i, 90, 200)).save(folder / f"p{i}.png")
    return folder


def run_shards(photos: Path, out: Path) -> int:
    return build_shards.main(
        ["photos", "--root", str(photos), "--out", str(out), "--size", "16", "--val-fraction", "0"]
    )


def test_shards_out_naming_a_file(photos, tmp_path, capsys):
    (tmp_path / "taken").write_text("a file")
    assert run_shards(photos, tmp_path / "taken") == 2
    assert one_error_line(capsys).startswith(f"error: --out {tmp_path / 'taken'}: a file is in the way")


def test_shards_read_only_out(photos, tmp_path, read_only, capsys):
    out = tmp_path / "shards"
    out.mkdir()
    read_only(out)
    assert run_shards(photos, out) == 2
    assert (
        one_error_line(capsys)
        == f"error: --out {out}: cannot write here (Read-only file system); give a writable folder"
    )


def test_shards_write_failing_during_the_build(photos, tmp_path, monkeypatch, capsys):
    from restoration.data import shard_build

    def full(path, *args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(shard_build, "write_report_csv", full)
    out = tmp_path / "shards"
    assert run_shards(photos, out) == 1
    line = one_error_line(capsys)
    assert line.startswith(f"error: {out / 'rejected.csv'}: No space left on device; completed shards are kept")
    assert list(out.glob("*.tar"))


# -- restoration-evaluate ------------------------------------------------------------------------------------------


def run_evaluate(contest: Path, *extra: str) -> int:
    return evaluate.main(["--pred", str(contest / "gt"), "--gt", str(contest / "gt"), "--input",
                          str(contest / "test_input"), *extra])  # fmt: skip


def test_evaluate_json_naming_a_folder_or_below_a_file(contest, tmp_path, capsys):
    (tmp_path / "scores.json").mkdir()
    assert run_evaluate(contest, "--json", str(tmp_path / "scores.json")) == 2
    assert one_error_line(capsys) == f"error: --json {tmp_path / 'scores.json'}: is a folder; give a file path"
    (tmp_path / "taken").write_text("a file")
    assert run_evaluate(contest, "--json", str(tmp_path / "taken" / "s.json")) == 2
    assert one_error_line(capsys).startswith(f"error: --json {tmp_path / 'taken' / 's.json'}: a file is in the way")


def test_evaluate_read_only_report_folder(contest, tmp_path, read_only, capsys):
    reports = tmp_path / "reports"
    reports.mkdir()
    read_only(reports)
    assert run_evaluate(contest, "--json", str(reports / "s.json")) == 2
    assert "cannot write here (Read-only file system); give a writable folder" in one_error_line(capsys)
    read_only(contest)  # the default: next to --pred
    assert run_evaluate(contest) == 2
    assert "choose it with --json" in one_error_line(capsys)


def test_evaluate_write_failing_after_scoring(contest, tmp_path, monkeypatch, capsys):
    def full(path, *args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(evaluate, "write_report_csv", full)
    assert run_evaluate(contest, "--json", str(tmp_path / "s.json")) == 1
    assert one_error_line(capsys).startswith(f"error: writing {tmp_path / 's.csv'} failed (No space left on device)")
