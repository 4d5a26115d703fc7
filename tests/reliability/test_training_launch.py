"""A stop signal through `accelerate launch`: every rank saves the same step, writes the requeue marker and ends
without a traceback.

What the launcher itself prints is not ours: torch's elastic agent (which `accelerate launch` runs for more than one
process) turns a SIGTERM it receives into `SignalException`, forwards SIGTERM to the ranks, waits for them (up to
TORCH_ELASTIC_SHUTDOWN_TIMEOUT, 30 s by default, then SIGKILL) and raises it again; accelerate lets it through, so the
launcher ends with exit code 1 and that traceback, whatever the ranks' exit codes (75 here). Under SLURM,
launch/slurm/train.sbatch requeues on the ranks' `REQUEUE` marker, not on the launcher's exit code."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny.yaml"


@pytest.mark.slow
def test_sigterm_to_accelerate_launch_saves_on_every_rank_without_a_traceback_from_ours(tmp_path, tiny_shards):
    logs = tmp_path / "rank-logs"
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ROOT / "launch" / "cpu.yaml"),
        "--main_process_port", str(free_port()), "--log_dir", str(logs), "--tee", "3",
        "-m", "restoration.train", str(TINY), f"run.output_dir={tmp_path / 'runs'}", f"data.root={tiny_shards}",
        "run.name=term", "run.max_steps=100000", "run.checkpoint_every=100000", "run.eval_every=0",
        "run.tracking=false",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "launch.log"
    with open(out, "wb") as fh:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 300
        while time.time() < deadline and "ranks=" not in out.read_text(errors="ignore"):
            assert proc.poll() is None, out.read_text()[-4000:]
            time.sleep(0.2)
        time.sleep(3)
        proc.send_signal(signal.SIGTERM)  # the launcher only, as `kill PID` does
        rc = proc.wait(timeout=120)
    launcher = out.read_text(errors="ignore")
    run_dir = tmp_path / "runs" / "term"
    saved = int((run_dir / "REQUEUE").read_text())
    assert (run_dir / "checkpoints" / f"step-{saved:08d}" / "trainer.json").is_file(), launcher[-4000:]

    ranks = sorted(logs.rglob("std*.log"))
    assert len(ranks) == 4, ranks  # stdout and stderr of ranks 0 and 1
    text = {str(p.relative_to(logs)): p.read_text(errors="ignore") for p in ranks}
    assert not [name for name, t in text.items() if "Traceback" in t], text
    assert f"stop signal (SIGTERM): saved step {saved}" in "".join(text.values())
    # the launcher's own ending (see the module docstring): exit 1 with torch's SignalException, or 75 where a
    # launcher passes the ranks' code on
    assert rc == 75 or (rc == 1 and "SignalException" in launcher), launcher[-4000:]
