"""`restoration/throughput.py`: the first step is kept apart, windows restart, the file is replaced whole."""

from __future__ import annotations

import json

import pytest

from restoration.throughput import Throughput


def test_first_step_is_kept_apart_and_windows_restart():
    speed = Throughput(batch=8)
    speed.add(5.0)  # compilation, autotuning, worker start-up
    assert speed.window() == {}
    assert "too few to time" in speed.describe()
    speed.add(0.5)
    speed.add(0.3)
    assert speed.window() == pytest.approx({"train/img_per_s": 20.0, "train/step_s": 0.4})
    assert speed.window() == {}
    speed.add(1.0)
    assert speed.window() == pytest.approx({"train/img_per_s": 8.0, "train/step_s": 1.0})
    summary = speed.summary()
    assert summary["first_step_s"] == 5.0
    assert summary["steps"] == 3
    assert summary["step_s"] == pytest.approx(0.6)
    assert summary["img_per_s"] == pytest.approx(8 / 0.6)
    assert "13.33 img/s" in speed.describe()
    assert "the first took 5.0 s" in speed.describe()


def test_written_file_is_whole_json(tmp_path):
    speed = Throughput(batch=2)
    path = tmp_path / "throughput.json"
    path.write_text("{half")  # a previous process's file is replaced, not appended to
    speed.add(1.0)
    speed.add(0.25)
    speed.write(path)
    written = json.loads(path.read_text())
    assert set(written) == {"batch", "first_step_s", "steps", "seconds", "step_s", "img_per_s"}
    assert written["img_per_s"] == pytest.approx(8.0)
    assert not list(tmp_path.glob("*.tmp"))
