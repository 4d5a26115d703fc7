"""Training on settings and files it cannot use: a resume that would mix two configs, a config file that is not UTF-8,
image sizes and batches the networks cannot take, a run directory that cannot be written. Each is refused before
anything is written, with one message naming the file or key and what to do, exit code 2; never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from restoration.config import ConfigError, load_config
from restoration.models.layers import MinibatchStdLayer
from restoration.recipe import TrainConfig, check_recipe, mbstd_divides
from restoration.train import main

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny.yaml"


def args(tmp_path: Path, shards: Path, name: str, *extra: str) -> list[str]:
    return [str(TINY), f"run.output_dir={tmp_path / 'runs'}", f"data.root={shards}", f"run.name={name}",
            "run.tracking=false", "run.log_model=false", "run.eval_every=0", *extra]  # fmt: skip


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


# -- resume -------------------------------------------------------------------------------------------------------


def test_a_resume_with_another_batch_size_is_refused_unless_allowed_and_then_recorded(tmp_path, tiny_shards, capsys):
    tracked = ("run.tracking=true", "run.checkpoint_every=2")
    assert main(args(tmp_path, tiny_shards, "mix", *tracked, "run.max_steps=2")) == 0
    run_dir = tmp_path / "runs" / "mix"
    saved = (run_dir / "config.yaml").read_bytes()
    capsys.readouterr()

    assert main(args(tmp_path, tiny_shards, "mix", *tracked, "run.max_steps=4", "run.batch_size=4")) == 2
    message = one_line(capsys.readouterr().err)
    assert message.startswith(f"config error: {run_dir / 'config.yaml'}: ")
    assert "run.batch_size 2 -> 4" in message
    assert "run.allow_config_change=true" in message
    assert (run_dir / "config.yaml").read_bytes() == saved  # nothing was overwritten
    assert not (run_dir / "checkpoints" / "step-00000004").exists()

    # what may change on resume changes without a word: the run's length, intervals, workers
    free = ("run.max_steps=3", "run.log_every=3", "run.num_panels=1", "data.num_workers=0", "run.dist_timeout_s=60")
    assert main(args(tmp_path, tiny_shards, "mix", *tracked, *free)) == 0

    assert main(args(tmp_path, tiny_shards, "mix", *tracked, "run.max_steps=4", "run.batch_size=4",
                     "run.allow_config_change=true")) == 0  # fmt: skip
    assert "run.batch_size 2 -> 4" in capsys.readouterr().out
    resumed = load_config(TrainConfig, run_dir / "config.yaml")
    assert resumed.run.batch_size == 4
    assert resumed.run.allow_config_change is False  # for that resume only
    assert load_config(TrainConfig, run_dir / "config.before-step-00000003.yaml").run.batch_size == 2
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.data.params["run.batch_size"] == "2"  # params are immutable: what the run started with
    assert run.data.tags["resume.changed_keys"] == "run.batch_size 2 -> 4"
    assert run.data.tags["resume.changed_at_step"] == "3"
    state = json.loads((run_dir / "checkpoints" / "step-00000004" / "trainer.json").read_text())
    assert state["mlflow_run_id"] == run.info.run_id


def test_a_resume_as_another_stage_is_one_short_message(tmp_path, tiny_shards):
    assert main(args(tmp_path, tiny_shards, "staged", "run.max_steps=2", "run.checkpoint_every=2")) == 0
    run_dir = tmp_path / "runs" / "staged"
    saved = (run_dir / "config.yaml").read_bytes()
    cmd = [sys.executable, "-m", "restoration.train", *args(tmp_path, tiny_shards, "staged", "stage=colorize")]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    err = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(err) < 5, result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout
    assert "this run trains the joint stage; a run cannot change its stage" in result.stderr
    assert f"init.from_weights=[{run_dir}]" in result.stderr
    assert (run_dir / "config.yaml").read_bytes() == saved


# -- files and values the trainer cannot use ------------------------------------------------------------------------


def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("# r\u00e9glages de l'\u00e9t\u00e9\nrun:\n  name: caf\u00e9\n".encode("latin-1"))
    assert main([str(path), "--print-config"]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"config error: {path}: not UTF-8")
    assert "line 1" in line
    assert "save the file as UTF-8" in line


def test_image_sizes_mat_cannot_take_are_refused_at_load(tmp_path, tiny_shards, capsys):
    assert main(args(tmp_path, tiny_shards, "size", "data.image_size=63")) == 2
    line = one_line(capsys.readouterr().err)
    assert "data.image_size=63" in line
    assert "takes 64 x 64 px images only" in line
    assert "set data.image_size=64" in line
    assert "a power of two >= 32: 32, 64, 128, 256" in line
    assert not (tmp_path / "runs").exists()

    assert main(args(tmp_path, tiny_shards, "size", "data.image_size=48", "mat.img_resolution=48")) == 2
    line = one_line(capsys.readouterr().err)
    assert "mat.img_resolution=48" in line

    def refused(*overrides: str) -> bool:
        try:
            check_recipe(load_config(TrainConfig, TINY, overrides))
        except ConfigError:
            return True
        return False

    assert not refused("data.image_size=32", "mat.img_resolution=32")  # MAT built for another power of two
    assert refused("mat.img_resolution=16", "data.image_size=16")  # its token grid: 16
    assert not refused("stage=colorize", "data.image_size=63")  # the U-Nets pad to their stride
    assert refused("stage=colorize", "data.image_size=16")
    for shipped in sorted((ROOT / "configs").rglob("*.yaml")):
        check_recipe(load_config(TrainConfig, shipped))


def test_batches_the_discriminators_mbstd_groups_cannot_divide_are_refused_at_load(tmp_path, tiny_shards, capsys):
    assert main(args(tmp_path, tiny_shards, "batch", "run.batch_size=3")) == 2
    line = one_line(capsys.readouterr().err)
    assert "run.batch_size=3" in line
    assert "mbstd_group_size=4" in line
    assert "use run.batch_size=1 or 2 or 4 or 8 or 12 or 16" in line
    assert not (tmp_path / "runs").exists()
    assert main(args(tmp_path, tiny_shards, "batch", "run.batch_size=3", "stage=colorize", "run.max_steps=1")) == 0

    # the rule is the layer's own: refused exactly where MinibatchStdLayer fails on the G or the D batch
    for group in (4, 8):
        layer = MinibatchStdLayer(group)
        for batch in range(1, 3 * group):
            try:
                for n in (batch, 2 * batch):
                    layer(torch.zeros(n, 2, 4, 4))
                works = True
            except RuntimeError:
                works = False
            assert mbstd_divides(batch, group) == works, (group, batch)


def test_a_run_directory_that_cannot_be_written_is_one_line(tmp_path, tiny_shards, capsys, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where the output folder should be")
    extra = (f"run.output_dir={blocker / 'runs'}",)
    assert main([*args(tmp_path, tiny_shards, "ro"), *extra]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"error: cannot write the run directory {blocker / 'runs' / 'ro'}")
    assert "run.output_dir" in line

    import restoration.trainer as train_module

    def read_only(run_dir: Path):
        raise PermissionError(13, "Permission denied", str(run_dir / "LOCK"))

    monkeypatch.setattr(train_module, "acquire_run_lock", read_only)
    assert main(args(tmp_path, tiny_shards, "ro")) == 2
    line = one_line(capsys.readouterr().err)
    assert f"{tmp_path / 'runs' / 'ro' / 'LOCK'}: Permission denied" in line


@pytest.mark.parametrize("key", ["stage", "run.batch_size", "data.image_size", "mat.preset", "loss.r1_gamma",
                                 "optim.lr", "colorizer.encoder"])  # fmt: skip
def test_the_run_defining_keys_are_compared_and_the_rest_are_not(key):
    from restoration.config import to_dict
    from restoration.recipe import resume_changes

    cfg = load_config(TrainConfig, TINY)
    saved = to_dict(cfg)
    section, _, leaf = key.rpartition(".")
    node = saved[section] if section else saved
    node[leaf] = "something else"
    assert [c[0] for c in resume_changes(saved, cfg)] == [key]
    for free in ("run.max_steps", "run.eval_every", "run.num_panels", "data.num_workers", "data.root",
                 "run.tracking", "run.dist_timeout_s", "mat.checkpointing", "init.from_weights"):  # fmt: skip
        saved = to_dict(cfg)
        section, _, leaf = free.rpartition(".")
        saved[section][leaf] = "something else"
        assert resume_changes(saved, cfg) == [], free
