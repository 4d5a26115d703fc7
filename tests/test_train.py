"""The trainer end to end on the tiny config: every stage, 2 synced CPU ranks, SIGKILL + resume, SIGTERM, MLflow."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import free_port

from restoration.preemption import REQUEUE_EXIT_CODE
from restoration.train import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.yaml"


def overrides(tmp_path: Path, shards: Path, *extra: str) -> list[str]:
    return [f"run.output_dir={tmp_path / 'runs'}", f"data.root={shards}", *extra]


def mlflow_client(tmp_path: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")


def the_run(tmp_path: Path, name: str):
    client = mlflow_client(tmp_path)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], filter_string=f"tags.mlflow.runName = '{name}'"
    )
    assert len(runs) == 1, f"expected one MLflow run named {name}, got {len(runs)}"
    return client, runs[0]


def score_like_a_user(run_dir: Path, shards: Path, out: Path) -> dict:
    """The run's export on its val split, the way a user gets a score: restoration-predict on the files, then
    restoration-evaluate's scoring."""
    from restoration.demo import write_contest_folder
    from restoration.evaluate import evaluate_files
    from restoration.predict import main as predict

    contest = write_contest_folder(shards, out / "contest")
    args = [
        "--model",
        str(run_dir),
        "--input",
        str(contest / "test.csv"),
        "--out",
        str(out / "pred"),
        "--batch-size",
        "3",
    ]
    assert predict(args) == 0
    return evaluate_files(out / "pred", contest / "gt", inputs=[str(contest / "test.csv")])


@pytest.mark.parametrize("stage", ["detector", "inpaint", "colorize", "joint", "gan_baseline"])
def test_every_stage_trains_evaluates_and_exports(stage, tmp_path, tiny_shards):
    rc = main(
        [str(TINY), *overrides(tmp_path, tiny_shards, f"stage={stage}", f"run.name={stage}", "run.eval_batches=0")]
    )
    assert rc == 0
    run_dir = tmp_path / "runs" / stage
    final_val = json.loads((run_dir / "eval.jsonl").read_text().splitlines()[-1])
    assert final_val["step"] == 3
    if stage != "detector":  # every export that restores: its last val score is what a user scores with it
        user = score_like_a_user(run_dir, tiny_shards, tmp_path / "user")
        assert user["count"] == final_val["samples"] > 0
        for key in ("S", "M", "C", "score", "psnr"):
            # batched convolutions may round a rare pixel one level apart between batch sizes: 1e-4, not 0
            assert user["mean"][key] == pytest.approx(final_val[key], abs=1e-4), key
        recorded = json.loads((run_dir / "final" / "pipeline.json").read_text()).get("inference")
        if stage != "gan_baseline":  # a pipeline with settings to choose records the chosen ones
            assert recorded["inpaint_mode"] in ("tile", "fill")
    assert (run_dir / "final" / "pipeline.json").is_file()
    assert json.loads((run_dir / "final" / "pipeline.json").read_text())["stage"] == stage
    assert any(run_dir.glob("final/*.safetensors"))
    client, run = the_run(tmp_path, stage)
    history = client.get_metric_history(run.info.run_id, "val/score")
    assert history
    assert all(0.0 <= m.value <= 1.0 or m.value > -1 for m in history)
    if stage == "detector":
        assert client.get_metric_history(run.info.run_id, "val/mask_iou")
    speed = json.loads((run_dir / "throughput.json").read_text())  # 3 steps: the first apart, 2 timed
    assert speed["batch"] == 2
    assert speed["steps"] == 2
    assert speed["first_step_s"] > 0
    assert speed["img_per_s"] == pytest.approx(2 / speed["step_s"])
    logged = client.get_metric_history(run.info.run_id, "train/img_per_s")
    assert [m.step for m in logged] == [2, 3]  # from the second step on: the first is never in a window
    if stage in ("joint", "gan_baseline"):  # a complete pipeline: logged as a pyfunc model in the run
        import mlflow
        import pandas as pd

        from restoration.tracking import fluent_mlflow

        with fluent_mlflow(client.tracking_uri):
            # dst_path: mlflow would otherwise download the model into a /tmp folder it never removes (46 MB)
            model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model", dst_path=str(tmp_path))
        photo = next((tiny_shards.parent / "photos").glob("*.png"))
        out = model.predict(pd.DataFrame({"path": [str(photo)]}))
        assert out["width"][0] == 96
        assert out["height"][0] == 96


def test_joint_starts_from_other_stages_exports_and_checkpoints(tmp_path, tiny_shards, caplog):
    assert main([str(TINY), *overrides(tmp_path, tiny_shards, "stage=inpaint", "run.name=a", "run.max_steps=1")]) == 0
    assert main([str(TINY), *overrides(tmp_path, tiny_shards, "stage=colorize", "run.name=b", "run.max_steps=1")]) == 0
    a, b = tmp_path / "runs" / "a" / "final", tmp_path / "runs" / "b" / "final"
    rc = main(
        [str(TINY), *overrides(tmp_path, tiny_shards, "stage=joint", "run.name=c", "run.max_steps=1"),
         f"init.from_weights=[{a},{b}]"]
    )  # fmt: skip
    assert rc == 0
    # a checkpoint is a starting point too, discriminators included (not only accelerate's model_N files)
    a_ckpt, b_ckpt = (tmp_path / "runs" / name / "checkpoints" / "step-00000001" for name in "ab")
    assert (a_ckpt / "mat_D.safetensors").is_file()
    assert (b_ckpt / "color_D.safetensors").is_file()
    assert not (a_ckpt / "mat_G.safetensors").exists()  # generators are there as their EMA copies only
    with caplog.at_level(logging.INFO, logger="restoration.weights"):
        rc = main(
            [str(TINY), *overrides(tmp_path, tiny_shards, "stage=joint", "run.name=d", "run.max_steps=1"),
             f"init.from_weights=[{a_ckpt},{b_ckpt}]"]
        )  # fmt: skip
    assert rc == 0
    loaded = {r.getMessage().split()[1] for r in caplog.records if r.getMessage().startswith("initialised")}
    assert loaded == {"mat_G", "mat_D", "color_G", "color_D"}


def launch_two_ranks(tmp_path: Path, shards: Path, *extra: str, cwd: Path) -> subprocess.Popen:
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ROOT / "launch" / "cpu.yaml"),
        "--main_process_port", str(free_port()), "-m", "restoration.train", str(TINY),
        *overrides(tmp_path, shards, *extra),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    log = open(tmp_path / "launch.log", "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.mark.slow
def test_two_synced_cpu_ranks_train_evaluate_checkpoint_and_log(tmp_path, tiny_shards):
    proc = launch_two_ranks(tmp_path, tiny_shards, "run.name=ddp", "run.max_steps=4", cwd=tmp_path)
    assert proc.wait(timeout=600) == 0, (tmp_path / "launch.log").read_text()[-4000:]
    run_dir = tmp_path / "runs" / "ddp"
    report = json.loads((run_dir / "replicas.json").read_text())
    assert report["num_processes"] == 2
    assert report["distributed_type"] == "MULTI_CPU"
    assert report["in_sync"] is True
    assert len(report["checksums"]) == 2
    assert report["checksums"][0] == report["checksums"][1]
    client, run = the_run(tmp_path, "ddp")
    assert run.data.params["world_size"] == "2"
    assert "optim.lr" in run.data.params
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/g_loss")]
    assert steps
    assert max(steps) == 4
    assert client.get_metric_history(run.info.run_id, "val/score")
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "config.yaml" in artifacts
    assert "final" in artifacts
    images = client.list_artifacts(run.info.run_id, "images")
    assert images, "no image panels logged"


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the launcher and every process under it: torch's elastic agent starts the ranks in their own
    sessions, so killing the launcher's process group alone would leave them training."""
    import psutil

    family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    for p in family:
        p.kill()
    psutil.wait_procs(family, timeout=30)
    proc.wait()


@pytest.mark.slow
def test_sigkill_mid_run_resumes_into_same_mlflow_run(tmp_path, tiny_shards):
    args = ("run.name=kill", "run.max_steps=10", "run.checkpoint_every=2", "run.eval_every=0", "run.keep_checkpoints=3")
    proc = launch_two_ranks(tmp_path, tiny_shards, *args, cwd=tmp_path)
    ckpts = tmp_path / "runs" / "kill" / "checkpoints"
    target = random.Random(0).choice([2, 4])
    deadline = time.time() + 300
    while time.time() < deadline and not (ckpts / f"step-{target:08d}").is_dir():
        assert proc.poll() is None, (tmp_path / "launch.log").read_text()[-4000:]
        time.sleep(0.2)
    kill_tree(proc)
    _, run_before = the_run(tmp_path, "kill")

    proc = launch_two_ranks(tmp_path, tiny_shards, *args, cwd=tmp_path)
    assert proc.wait(timeout=600) == 0, (tmp_path / "launch.log").read_text()[-4000:]
    assert "resuming from" in (tmp_path / "launch.log").read_text()
    client, run_after = the_run(tmp_path, "kill")
    assert run_after.info.run_id == run_before.info.run_id
    steps = [m.step for m in client.get_metric_history(run_after.info.run_id, "train/g_loss")]
    assert max(steps) == 10
    assert json.loads((ckpts / "step-00000010" / "trainer.json").read_text())["step"] == 10


@pytest.mark.slow
def test_sigterm_saves_then_exits_with_requeue_code(tmp_path, tiny_shards):
    cmd = [sys.executable, "-m", "restoration.train", str(TINY)]
    cmd += overrides(tmp_path, tiny_shards, "run.name=term", "run.max_steps=100000", "run.checkpoint_every=100000")
    log = tmp_path / "term.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.time() + 300
        while time.time() < deadline and "ranks=" not in log.read_text(errors="ignore"):
            time.sleep(0.2)
        time.sleep(3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=300) == REQUEUE_EXIT_CODE, log.read_text()[-4000:]
    assert "Traceback" not in log.read_text(errors="ignore")
    run_dir = tmp_path / "runs" / "term"
    saved = int((run_dir / "REQUEUE").read_text())
    assert saved >= 1
    assert (run_dir / "checkpoints" / f"step-{saved:08d}" / "trainer.json").is_file()
    _, run = the_run(tmp_path, "term")
    assert run.info.status == "KILLED"
