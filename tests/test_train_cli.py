"""The training command as a user drives it: preflight before anything exists, explicit resume, a finished run left
alone, --check, --help-config and --version."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from restoration.config import field_paths
from restoration.recipe import TrainConfig
from restoration.train import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.yaml"


def args(tmp_path: Path, data: Path | str, name: str, *extra: str) -> list[str]:
    return [str(TINY), f"run.output_dir={tmp_path / 'runs'}", f"data.root={data}", f"run.name={name}",
            "run.eval_every=0", "run.system_metrics=false", *extra]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ((), "data.root="),
        (("stage=colorize", "colorizer.pretrained=weights/resnet34.safetensors"), "colorizer.pretrained="),
        (("init.from_weights=[runs/inpaint-512]",), "init.from_weights: "),
    ],
    ids=["data", "weights", "init"],
)
def test_a_missing_file_exits_2_with_one_line_and_leaves_nothing(tmp_path, tiny_shards, capsys, extra, key):
    data = tmp_path / "nowhere" if key == "data.root=" else tiny_shards
    assert main(args(tmp_path, data, "x1", *extra)) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"error: {key}")
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "runs").exists()  # no run directory, no MLflow store, no MLflow run


def test_check_prints_the_resolved_config_and_the_plan_and_print_config_validates(tmp_path, tiny_shards, capsys):
    assert main([*args(tmp_path, tiny_shards, "c"), "--check"]) == 0
    out = capsys.readouterr().out
    assert "stage: joint" in out
    assert out.strip().endswith(f"{tmp_path / 'runs' / 'c'}: would start a new run")
    assert main([*args(tmp_path, tmp_path / "none", "c"), "--print-config"]) == 2
    captured = capsys.readouterr()
    assert "stage: joint" in captured.out
    assert captured.err.startswith("error: data.root=")
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_finished_run_is_not_trained_again_resume_must_and_never_and_fresh(tmp_path, tiny_shards, capsys):
    run = args(tmp_path, tiny_shards, "done", "run.max_steps=2")
    assert main(run) == 0
    run_dir = tmp_path / "runs" / "done"
    client = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    (mlflow_run,) = client.search_runs([client.get_experiment_by_name("restoration").experiment_id])
    models = client.search_logged_models([mlflow_run.info.experiment_id])
    assert len(models) == 1
    history = client.get_metric_history(mlflow_run.info.run_id, "val/score")
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    capsys.readouterr()

    assert main(run) == 0  # rerunning the command: nothing trained, exported or logged
    assert "finished at step 2: nothing to train" in capsys.readouterr().out
    assert len(client.search_logged_models([mlflow_run.info.experiment_id])) == 1
    assert client.get_metric_history(mlflow_run.info.run_id, "val/score") == history
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == checkpoints
    assert client.get_run(mlflow_run.info.run_id).info.status == "FINISHED"

    assert main([*run, "--resume", "never"]) == 2
    assert "run.resume=never" in capsys.readouterr().err
    assert main([*args(tmp_path, tiny_shards, "other", "run.max_steps=2"), "--resume", "must"]) == 2
    assert not (tmp_path / "runs" / "other").exists()

    assert main([*run, "--fresh", "run.log_model=false"]) == 0  # starts over in a new MLflow run
    (moved,) = [p for p in (tmp_path / "runs").iterdir() if p.name.startswith("done.replaced-")]
    assert (moved / "FINISHED.json").is_file()
    assert (run_dir / "FINISHED.json").is_file()
    assert len(client.search_runs([mlflow_run.info.experiment_id])) == 2


def test_help_config_lists_every_key_with_its_default_and_version_answers(capsys):
    assert main(["--help-config"]) == 0
    out = capsys.readouterr().out
    listed = {line.split()[0] for line in out.splitlines() if line.strip()}
    assert listed == set(field_paths(TrainConfig))
    assert "run.resume" in out
    assert "= auto" in out
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("restoration 0.")


def test_help_and_version_answer_without_importing_torch():
    """The command line module imports nothing heavy: `--help` answered in ~0.1 s here, torch alone takes ~2 s
    (BENCHMARKS.md)."""
    import subprocess
    import sys

    probe = (
        "import sys\nfrom restoration.train import main\n"
        "for flag in ('--help', '--version'):\n"
        "    try:\n        main([flag])\n    except SystemExit as exit:\n        assert exit.code == 0\n"
        "heavy = sorted(m for m in ('torch', 'accelerate', 'mlflow', 'timm') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "usage: python -m restoration.train" in out.stdout
    assert "--help-config" in out.stdout
    assert "HEAVY []" in out.stdout
