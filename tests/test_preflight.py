"""The checks a training run makes before creating anything: each problem one line naming the key and the file."""

from __future__ import annotations

import json
from pathlib import Path

from restoration.config import load_config
from restoration.preflight import data_problems, init_problems, preflight, weight_file_keys, weights_problems
from restoration.recipe import TrainConfig

TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"


def config(*overrides: str) -> TrainConfig:
    return load_config(TrainConfig, TINY, list(overrides))


def shard_folder(root: Path, splits: dict[str, int], present: bool = True) -> Path:
    root.mkdir(parents=True)
    shards = [{"split": s, "name": f"{s}-000000.tar", "count": n} for s, n in splits.items()]
    if present:
        for shard in shards:
            (root / shard["name"]).write_bytes(b"x")
    (root / "manifest.json").write_text(json.dumps({"shards": shards}))
    return root


def test_builtin_data_and_a_complete_shard_folder_pass(tmp_path):
    assert data_problems(config("data.root=builtin")) == []
    root = shard_folder(tmp_path / "s", {"train": 4, "val": 2})
    assert preflight(config(f"data.root={root}")) == []


def test_each_data_problem_names_the_key_the_folder_and_the_fix(tmp_path):
    (missing,) = data_problems(config(f"data.root={tmp_path / 'nowhere'}"))
    assert missing.startswith(f"data.root={tmp_path / 'nowhere'}: no such directory")
    assert "restoration-shards" in missing

    (tmp_path / "half").mkdir()
    (unfinished,) = data_problems(config(f"data.root={tmp_path / 'half'}"))
    assert "no manifest.json" in unfinished

    (tmp_path / "file").write_text("x")
    assert "a file, not a shard folder" in data_problems(config(f"data.root={tmp_path / 'file'}"))[0]

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text("{not json")
    assert "unreadable manifest" in data_problems(config(f"data.root={bad}"))[0]

    no_val = shard_folder(tmp_path / "noval", {"train": 4, "val": 0})
    assert data_problems(config(f"data.root={no_val}")) == [
        f"{no_val / 'manifest.json'}: no non-empty val shards; rebuild the shards with a val split"
    ]
    gone = shard_folder(tmp_path / "gone", {"train": 4, "val": 2}, present=False)
    (problem,) = data_problems(config(f"data.root={gone}"))
    assert "2 shard(s) its manifest lists are missing (train-000000.tar, val-000000.tar)" in problem


def test_only_the_weights_files_the_stage_reads_are_checked(tmp_path):
    missing = tmp_path / "resnet34.safetensors"
    colorize = config("stage=colorize", f"colorizer.pretrained={missing}", f"mat.weights={tmp_path / 'mat.st'}")
    assert set(weight_file_keys(colorize)) == {"colorizer.pretrained"}
    (problem,) = weights_problems(colorize)
    assert problem.startswith(f"colorizer.pretrained={missing}: no such file")

    inpaint = config("stage=inpaint", f"mat.weights={tmp_path}", f"colorizer.pretrained={missing}",
                     f"loss.perceptual_weights={tmp_path / 'vgg.st'}", "loss.mat_perceptual=0.1")  # fmt: skip
    assert set(weight_file_keys(inpaint)) == {"mat.weights", "loss.perceptual_weights"}
    problems = weights_problems(inpaint)
    assert problems[0] == f"mat.weights={tmp_path}: a directory, not a weights file"
    assert problems[1].startswith(f"loss.perceptual_weights={tmp_path / 'vgg.st'}: no such file")

    missing.write_bytes(b"x")
    assert weights_problems(colorize) == []


def test_init_sources_must_be_weights_directories(tmp_path, tiny_export):
    (tmp_path / "empty").mkdir()
    cfg = config(f"init.from_weights=[{tiny_export},{tmp_path / 'none'},{tmp_path / 'empty'}]")
    problems = init_problems(cfg)
    assert len(problems) == 2
    assert problems[0] == f"init.from_weights: {tmp_path / 'none'}: no such directory"
    assert problems[1].startswith(f"init.from_weights: {tmp_path / 'empty'}: not a model directory")
