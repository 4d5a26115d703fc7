"""Training under faults: garbage or truncated shards, stop signals in the data wait, a dead tracking store, two
trainings on one run directory, a full disk, a damaged newest checkpoint. None may hang, split its MLflow run or
end in a traceback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import free_port

from restoration.checkpoint import acquire_run_lock
from restoration.preemption import REQUEUE_EXIT_CODE
from restoration.train import main

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny.yaml"


class Payload:
    """Not a tensor: loading a file that holds it with weights_only=False would import and run code."""


def args(tmp_path: Path, shards: Path, name: str, *extra: str) -> list[str]:
    return [str(TINY), f"run.output_dir={tmp_path / 'runs'}", f"data.root={shards}", f"run.name={name}",
            "run.tracking=false", "run.log_model=false", *extra]  # fmt: skip


def copy_shards(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def train_shards(shards: Path) -> list[Path]:
    names = [s["name"] for s in json.loads((shards / "manifest.json").read_text())["shards"] if s["split"] == "train"]
    return [shards / n for n in names]


def test_garbage_only_train_shards_stop_with_a_message_naming_them(tmp_path, tiny_shards, capsys):
    shards = copy_shards(tiny_shards, tmp_path / "shards")
    for shard in train_shards(shards):
        shard.write_bytes(os.urandom(3000))
    start = time.monotonic()
    # data.verify_shards=false: the loader's own guard (shards damaged after the start, or never verified)
    unchecked = "data.verify_shards=false"
    rc = main(args(tmp_path, shards, "garbage", "data.stall_timeout_s=3", "run.max_steps=2", unchecked))
    assert rc == 1
    assert time.monotonic() - start < 60
    out = capsys.readouterr().err  # an error, printed by the rank whose data stalled
    assert "no training batch for" in out
    assert "data.stall_timeout_s=3" in out
    assert train_shards(shards)[0].name in out


@pytest.mark.slow
def test_sigterm_during_a_stalled_data_wait_is_honoured_within_seconds(tmp_path, tiny_shards):
    shards = copy_shards(tiny_shards, tmp_path / "shards")
    for shard in train_shards(shards):
        shard.write_bytes(b"\0" * 5000)
    cmd = [sys.executable, "-m", "restoration.train",
           *args(tmp_path, shards, "wait", "data.stall_timeout_s=3600", "data.verify_shards=false")]  # fmt: skip
    log = tmp_path / "wait.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.time() + 300
        while time.time() < deadline and "ranks=" not in log.read_text(errors="ignore"):
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
        time.sleep(2)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == REQUEUE_EXIT_CODE, log.read_text()[-3000:]
    assert time.monotonic() - sent < 30
    assert (tmp_path / "runs" / "wait" / "REQUEUE").read_text().strip() == "0"


def test_truncated_shards_are_counted_for_train_and_val(tmp_path, tiny_shards):
    shards = copy_shards(tiny_shards, tmp_path / "shards")
    manifest = json.loads((shards / "manifest.json").read_text())
    for split in ("train", "val"):
        shard = shards / next(s["name"] for s in manifest["shards"] if s["split"] == split)
        data = shard.read_bytes()
        shard.write_bytes(data[: len(data) // 2 + 100])
    rc = main(args(tmp_path, shards, "trunc", "run.max_steps=3", "run.tracking=true", "run.log_every=1",
                   "data.verify_shards=false"))  # fmt: skip
    assert rc == 0
    evals = [json.loads(line) for line in (tmp_path / "runs" / "trunc" / "eval.jsonl").read_text().splitlines()]
    assert evals[-1]["corrupt_samples"] >= 1
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    history = client.get_metric_history(run.info.run_id, "train/corrupt_samples")
    assert max(m.value for m in history) >= 1


def test_a_dead_tracking_server_costs_seconds_not_minutes(tmp_path, tiny_shards, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    start = time.monotonic()
    with pytest.warns(UserWarning, match="cannot reach"):
        rc = main(args(tmp_path, tiny_shards, "dead", "run.tracking=true", "run.max_steps=2", "run.eval_every=0"))
    assert rc == 0
    assert time.monotonic() - start < 120  # the whole short run; MLflow's own retries took 2-4 min per start
    state = json.loads((tmp_path / "runs" / "dead" / "checkpoints" / "step-00000002" / "trainer.json").read_text())
    assert state["step"] == 2


def test_a_resume_while_the_store_is_unreachable_keeps_one_mlflow_run(tmp_path, tiny_shards, monkeypatch):
    good = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    run_args = ("run.tracking=true", "run.eval_every=0", "run.checkpoint_every=2", "run.log_every=1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", good)
    assert main(args(tmp_path, tiny_shards, "outage", *run_args, "run.max_steps=2")) == 0
    ckpts = tmp_path / "runs" / "outage" / "checkpoints"
    run_id = json.loads((ckpts / "step-00000002" / "trainer.json").read_text())["mlflow_run_id"]
    assert run_id

    (tmp_path / "gone").write_text("a file where the store's folder should be: the store cannot be opened")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'gone' / 'mlflow.db'}")
    with pytest.warns(UserWarning, match="cannot reach"):
        assert main(args(tmp_path, tiny_shards, "outage", *run_args, "run.max_steps=4")) == 0
    assert json.loads((ckpts / "step-00000004" / "trainer.json").read_text())["mlflow_run_id"] == run_id

    monkeypatch.setenv("MLFLOW_TRACKING_URI", good)
    assert main(args(tmp_path, tiny_shards, "outage", *run_args, "run.max_steps=6")) == 0
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=good)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert [r.info.run_id for r in runs] == [run_id]
    steps = {m.step for m in client.get_metric_history(run_id, "train/g_loss")}
    assert {1, 2, 5, 6} <= steps


def test_the_tracker_sends_what_it_kept_once_the_store_answers(tmp_path):
    from mlflow.tracking import MlflowClient

    from restoration.run_metadata import manifest_digest, training_input
    from restoration.tracking import Tracker

    uri = f"sqlite:///{tmp_path / 'later' / 'mlflow.db'}"
    (tmp_path / "later").write_text("not a folder yet: the store cannot be opened")
    tracker = Tracker(enabled=True, retry_s=0.0)
    with pytest.warns(UserWarning, match="cannot reach"):
        assert tracker.start(tracking_uri=uri, experiment="e", run_name="r", artifact_root=tmp_path) is None
    tracker.log_params({"a": 1})
    tracker.log_metrics({"loss": 0.5}, step=1)
    tracker.set_tags({"mlflow.user": "ada"})
    manifest = {"shards": [{"name": "train-000000.tar", "split": "train", "count": 6, "sha256": "ab"}],
                "totals": {"train": 6, "val": 0}}  # fmt: skip
    tracker.log_inputs([training_input(tmp_path, manifest)])
    (tmp_path / "later").unlink()
    (tmp_path / "later").mkdir()  # the store comes back
    tracker.log_metrics({"loss": 0.25}, step=2)
    tracker.end()
    client = MlflowClient(tracking_uri=uri)
    assert [m.step for m in client.get_metric_history(tracker.run_id, "loss")] == [1, 2]
    run = client.get_run(tracker.run_id)
    assert run.data.params == {"a": "1"}
    assert run.data.tags["mlflow.user"] == "ada"
    assert [i.dataset.digest for i in run.inputs.dataset_inputs] == [manifest_digest(manifest)]


def test_a_second_training_on_a_held_run_directory_is_refused(tmp_path, tiny_shards, capsys):
    run_dir = tmp_path / "runs" / "busy"
    run_dir.mkdir(parents=True)
    lock = acquire_run_lock(run_dir)
    try:
        assert main(args(tmp_path, tiny_shards, "busy", "run.max_steps=1")) == 1
    finally:
        lock.release()
    err = capsys.readouterr().err
    assert "is in use by another training" in err
    assert f"pid {os.getpid()}" in err
    assert not (run_dir / "config.yaml").exists()  # nothing of the holder's was touched
    # a lock file left by a dead process is not a lock
    (run_dir / "LOCK").write_text(json.dumps({"host": "gone", "pid": 999999, "since": "yesterday"}))
    assert main(args(tmp_path, tiny_shards, "busy", "run.max_steps=1", "run.eval_every=0")) == 0


def test_a_failed_checkpoint_write_names_the_path_and_the_space(tmp_path, monkeypatch):
    import torch
    from accelerate import Accelerator

    from restoration.checkpoint import CheckpointWriteError, save_checkpoint

    accelerator = Accelerator(cpu=True)
    model = accelerator.prepare(torch.nn.Linear(256, 256))

    def disk_full(path: str) -> None:
        Path(path, "model.safetensors").write_bytes(b"x" * 1000)
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 0 vs 0: basic_ios::clear")

    monkeypatch.setattr(accelerator, "save_state", disk_full)
    with pytest.raises(CheckpointWriteError) as info:
        save_checkpoint(accelerator, tmp_path / "run", 3, ema={"m": model}, trainer_state={}, keep=2)
    message = str(info.value)
    assert "step-00000003.tmp" in message
    assert "free on that disk" in message
    assert "needs about" in message
    assert not (tmp_path / "run" / "checkpoints" / "step-00000003.tmp").exists()


def test_an_unreadable_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, tiny_shards, caplog, capsys):
    run_args = ("run.eval_every=0", "run.checkpoint_every=2", "run.keep_checkpoints=3")
    assert main(args(tmp_path, tiny_shards, "fallback", *run_args, "run.max_steps=4")) == 0
    newest = tmp_path / "runs" / "fallback" / "checkpoints" / "step-00000004"
    for weights in newest.glob("*.safetensors"):
        weights.write_bytes(weights.read_bytes()[:100])
    assert main(args(tmp_path, tiny_shards, "fallback", *run_args, "run.max_steps=6")) == 0
    assert "step-00000004 is unreadable" in caplog.text
    assert "step-00000002 at step 2" in capsys.readouterr().out
    final = tmp_path / "runs" / "fallback" / "checkpoints" / "step-00000006" / "trainer.json"
    assert json.loads(final.read_text())["step"] == 6


def test_weights_files_of_the_wrong_kind_get_a_message_not_a_traceback(tmp_path, tiny_shards, capsys):
    import torch

    from restoration import convert_mat

    hostile = tmp_path / "hostile.pth"
    torch.save({"x": Payload()}, hostile)
    assert convert_mat.main([str(hostile), str(tmp_path / "o.safetensors")]) == 3
    err = capsys.readouterr().err
    assert "refused" in err
    assert "weights_only=False" not in err

    renamed = tmp_path / "state.pkl"  # a G-only state dict saved by torch, named like an official pickle
    torch.save({"synthesis.dec.Dec_16x16.conv.weight": torch.zeros(1)}, renamed)
    assert convert_mat.main([str(renamed), str(tmp_path / "s.safetensors")]) == 0

    assert main(args(tmp_path, tiny_shards, "badweights", "stage=inpaint", f"mat.weights={renamed}")) == 2
    err = capsys.readouterr().err
    assert "not a converted MAT weights file" in err
    assert "restoration-convert-mat" in err
