"""What a training run records in MLflow beyond its metrics: where it came from (user, entry point, git, SLURM, a
description), the shards as its dataset, the inference candidates as one table, and the classical anchors on its
val split."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from accelerate import Accelerator
from conftest import TINY_CONFIG

from restoration.config import load_config
from restoration.data.shards import make_val_loader, read_manifest
from restoration.recipe import TrainConfig
from restoration.run_metadata import (
    GitInfo,
    RunOrigin,
    entry_point,
    git_info,
    manifest_dataset,
    manifest_digest,
    public_url,
    run_note,
    run_tags,
    source_tags,
)
from restoration.tracking import Tracker, git_sha
from restoration.validation import VAL_ANCHORS, anchor_scores, evaluate

GIT = GitInfo(commit="0123abc", branch="main", repo_url="https://github.com/org/restoration.git", dirty=False)


def origin(git: GitInfo = GIT, **env: str) -> RunOrigin:
    return RunOrigin(user="ada", host="node7", entry_point="restoration.train", git=git, env=env)


# -- the tags, without MLflow's store --------------------------------------------------------------------------


def test_a_local_run_from_a_checkout_gets_mlflows_source_and_git_tags():
    tags = source_tags(origin())
    assert tags == {
        "mlflow.user": "ada",
        "mlflow.source.name": "restoration.train",
        "mlflow.source.type": "LOCAL",
        "mlflow.source.git.commit": "0123abc",
        "mlflow.source.git.branch": "main",
        "mlflow.source.git.repoURL": "https://github.com/org/restoration.git",
        "mlflow.source.git.dirty": "false",
        "host": "node7",
    }


def test_without_git_the_git_tags_are_left_out():
    tags = source_tags(origin(GitInfo()))
    assert not [k for k in tags if k.startswith("mlflow.source.git")]
    assert tags["mlflow.source.type"] == "LOCAL"


def test_a_slurm_run_is_a_job_with_its_id_nodes_and_restarts():
    tags = source_tags(origin(SLURM_JOB_ID="4242", SLURM_JOB_NUM_NODES="2", SLURM_RESTART_COUNT="1"))
    assert tags["mlflow.source.type"] == "JOB"
    assert (tags["slurm.job_id"], tags["slurm.nodes"], tags["slurm.restart_count"]) == ("4242", "2", "1")


def test_the_description_names_stage_config_data_processes_and_job():
    note = run_note(stage="joint", config_file=Path("configs/tiny.yaml"), data_root=Path("/data/shards"),
                    totals={"train": 96, "val": 32, "rejected": 0}, world_size=4,
                    env={"SLURM_JOB_ID": "7", "SLURM_JOB_NUM_NODES": "2"})  # fmt: skip
    assert note == (
        "Trains the **joint** stage from `configs/tiny.yaml` on `/data/shards` (96 train / 32 val samples), "
        "4 processes, SLURM job 7 on 2 nodes."
    )
    local = run_note(stage="inpaint", config_file=None, data_root=Path("d"), totals={}, world_size=1, env={})
    assert local == "Trains the **inpaint** stage from the defaults on `d`, 1 process."
    tags = run_tags(origin(), stage="joint", config_file=None, data_root=Path("d"), manifest={}, world_size=1)
    assert tags["mlflow.note.content"].startswith("Trains the **joint** stage")


def test_the_entry_point_is_the_module_run_else_the_script():
    assert entry_point("restoration.train", "/x/restoration/train.py") == "restoration.train"
    assert entry_point("pytest.__main__", "/x/pytest/__main__.py") == "pytest"
    assert entry_point(None, "/venv/bin/restoration-train") == "restoration-train"
    assert entry_point(None, "-c") == "restoration.train"


def test_a_remote_url_loses_its_credentials():
    assert public_url("https://bot:s3cret@github.com/org/r.git") == "https://github.com/org/r.git"
    assert public_url("git@github.com:org/r.git") == "git@github.com:org/r.git"
    assert public_url("/srv/git/r.git") == "/srv/git/r.git"


def test_git_info_reads_a_checkout_and_nothing_outside_one(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@x"]
    subprocess.run([*git, "init", "-q", "-b", "feature"], check=True)
    (repo / "a.txt").write_text("a")
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "a"], check=True)
    subprocess.run([*git, "remote", "add", "origin", "https://u:tok@example.com/r.git"], check=True)
    info = git_info(repo)
    assert info == GitInfo(info.commit, "feature", "https://example.com/r.git", dirty=False)
    assert len(info.commit) == 40
    (repo / "a.txt").write_text("changed")
    assert git_info(repo).dirty is True
    outside = tmp_path / "plain"
    outside.mkdir()
    if subprocess.run(["git", "-C", str(outside), "rev-parse"], capture_output=True).returncode != 0:
        assert git_info(outside) == GitInfo()


# -- the dataset -----------------------------------------------------------------------------------------------


def test_the_digest_follows_the_shards_bytes_not_the_folder(tiny_shards):
    manifest = read_manifest(tiny_shards)
    moved = {**manifest, "args": {**manifest["args"], "root": "/elsewhere"}}
    assert manifest_digest(moved) == manifest_digest(manifest)
    changed = json.loads(json.dumps(manifest))
    changed["shards"][0]["sha256"] = "0" * 64
    assert manifest_digest(changed) != manifest_digest(manifest)
    dataset = manifest_dataset(tiny_shards, manifest)
    assert dataset.digest == manifest_digest(manifest)
    assert dataset.profile["train_samples"] == manifest["totals"]["train"]
    assert json.loads(dataset._to_mlflow_entity().profile)["val_samples"] == manifest["totals"]["val"]


# -- the anchors on the val split ------------------------------------------------------------------------------


def test_the_anchors_are_scored_on_the_images_evaluate_scores(tiny_shards):
    data = load_config(TrainConfig, TINY_CONFIG, [f"data.root={tiny_shards}"]).data
    loader = make_val_loader(data, batch_size=2, rank=0, world_size=1)
    accelerator = Accelerator(cpu=True)
    scores, images = anchor_scores(loader, accelerator, data, max_batches=1)
    assert images == 2
    assert list(scores) == list(VAL_ANCHORS)
    all_scores, all_images = anchor_scores(loader, accelerator, data)
    # `evaluate` with a pipeline that answers the input unchanged scores what the `input` anchor scores
    unchanged = SimpleNamespace(restore=lambda inputs, **_: [SimpleNamespace(rgb=x[..., None].repeat(3, -1))
                                                             for x in inputs])  # fmt: skip
    by_evaluate, _ = evaluate(unchanged, None, loader, accelerator, data, num_panels=0)
    assert all_images == by_evaluate["samples"] > 2
    for key in ("S", "M", "C", "score"):
        assert all_scores["input"][key] == pytest.approx(by_evaluate[key], abs=1e-9), key
    assert all_scores["true_gray"]["M"] > all_scores["input"]["M"]


# -- the tracker -----------------------------------------------------------------------------------------------


def test_a_table_gets_a_steps_rows_once(tmp_path):
    tracker = Tracker(enabled=True)
    tracker.start(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", experiment="t", run_name="r",
                  artifact_root=tmp_path / "mlruns")  # fmt: skip
    table = {"setting": ["tile", "fill"], "score": [0.5, 0.6]}
    tracker.log_table(table, "inference_candidates.json", step=3)
    tracker.log_table(table, "inference_candidates.json", step=3)  # the end of a run, repeated after a preemption
    tracker.log_table({"setting": ["tile", "fill"], "score": [0.55, 0.7]}, "inference_candidates.json", step=5)
    tracker.end()
    local = tracker._client.download_artifacts(tracker.run_id, "inference_candidates.json", str(tmp_path))
    logged = json.loads(Path(local).read_text())
    assert logged["columns"] == ["setting", "score", "step"]
    assert logged["data"] == [["tile", 0.5, 3], ["fill", 0.6, 3], ["tile", 0.55, 5], ["fill", 0.7, 5]]


# -- a whole run -----------------------------------------------------------------------------------------------


def test_a_run_records_its_origin_data_candidates_and_anchors(tmp_path):
    """The tiny config on the built-in data (`data.root=builtin`, built into the run's output folder)."""
    from mlflow.tracking import MlflowClient

    from restoration.train import main

    args = [str(TINY_CONFIG), f"run.output_dir={tmp_path / 'runs'}", "run.name=origin", "run.log_model=false",
            "run.system_metrics=false"]  # fmt: skip
    assert main(args) == 0
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    run_id, tags = run.info.run_id, run.data.tags

    assert tags["mlflow.user"]
    assert tags["mlflow.source.name"]
    assert tags["mlflow.source.type"] in ("LOCAL", "JOB")
    if git_sha() != "unknown":
        assert tags["mlflow.source.git.commit"] == git_sha()
    assert tags["mlflow.note.content"].startswith(f"Trains the **joint** stage from `{TINY_CONFIG}` on `")

    shards = tmp_path / "runs" / "demo-data" / "builtin-64" / "shards"
    (used,) = run.inputs.dataset_inputs
    assert used.dataset.digest == manifest_digest(read_manifest(shards))
    assert used.dataset.name == "builtin-64/shards"
    assert {t.key: t.value for t in used.tags} == {"mlflow.data.context": "training"}

    assert not [k for k in run.data.metrics if k.startswith("inference_")]
    assert run.data.metrics["inference/gain_over_default"] >= 0.0  # the default setting is a candidate
    settings = json.loads((tmp_path / "runs" / "origin" / "final" / "inference_settings.json").read_text())
    rows = candidate_rows(client, run_id, tmp_path / "table-3")
    assert [r["setting"] for r in rows] == list(settings["scores"])
    assert {r["step"] for r in rows} == {3}
    (chosen,) = [r for r in rows if r["chosen"]]
    assert chosen["score"] == pytest.approx(run.data.metrics["inference/chosen_score"])
    assert chosen["setting"] == max(settings["scores"], key=lambda label: settings["scores"][label]["score"])

    anchors = json.loads((tmp_path / "runs" / "origin" / "final" / "val_anchors.json").read_text())
    assert anchors["split"] == "val"
    assert anchors["images"] == 4  # run.eval_batches=2 batches of 2: the images the model is scored on
    assert set(anchors["scores"]) == {"input", "telea", "true_gray"}
    assert anchors["scores"]["true_gray"]["M"] > anchors["scores"]["input"]["M"]
    for name, m in anchors["scores"].items():
        assert set(m) == {"S", "M", "C", "score"}
        assert run.data.metrics[f"val_anchor/{name}/score"] == pytest.approx(m["score"])
    assert "val_anchors.json" in {Path(a.path).name for a in client.list_artifacts(run_id, "final")}

    assert main([*args, "run.max_steps=4"]) == 0  # resumed: the tags are set again, the dataset is kept once
    (resumed,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert resumed.info.run_id == run.info.run_id
    assert [i.dataset.digest for i in resumed.inputs.dataset_inputs] == [used.dataset.digest]
    assert resumed.data.tags["mlflow.note.content"] == tags["mlflow.note.content"]
    steps = [r["step"] for r in candidate_rows(client, run_id, tmp_path / "table-4")]
    assert steps == [3] * len(rows) + [4] * len(rows)  # the candidates of the longer run's end appended


def candidate_rows(client, run_id: str, dst: Path) -> list[dict]:
    dst.mkdir()
    table = json.loads(Path(client.download_artifacts(run_id, "inference_candidates.json", str(dst))).read_text())
    return [dict(zip(table["columns"], row)) for row in table["data"]]
