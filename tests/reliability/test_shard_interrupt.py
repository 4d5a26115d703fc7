"""Ctrl-C during a parallel shard build: one line saying how to continue, exit 130, silent workers; the rerun of the
same command finishes the build."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = 100


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_ctrl_c_in_a_parallel_shard_build_is_one_line_and_exit_130(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(PHOTOS):  # noise upscaled to 384 px: a few seconds of work for two workers
        Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(photos / f"p{i:03d}.png")
    out = tmp_path / "shards"
    command = [sys.executable, "-m", "data_prep.build_shards", "photos", "--root", str(photos), "--out", str(out),
               "--workers", "2", "--samples-per-shard", "1", "--size", "384", "--val-fraction", "0"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Ctrl-C as a terminal's: a suite started in the background (`cmd &`, nohup) hands its children SIGINT ignored,
    # and a Python started so never raises KeyboardInterrupt; the build is given the default disposition
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, preexec_fn=_default_sigint)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("*.tar")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert proc.poll() is None, "the build ended before it could be interrupted"
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: to the whole process group, workers included
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    err = err.decode(errors="replace")
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "KeyboardInterrupt" not in err
    said = [line for line in err.replace("\r", "\n").splitlines() if "interrupted" in line]
    assert said == ["interrupted; rerun the same command to continue: completed shards are kept"]
    assert not (out / "manifest.json").exists()

    rerun = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr.decode(errors="replace")
    assert json.loads((out / "manifest.json").read_text())["totals"]["train"] == PHOTOS
