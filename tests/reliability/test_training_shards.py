"""Train shards that are garbage, truncated or swapped: the log stays readable, the corrupt-sample counter counts
each missing sample once, and a shard that is not the one its manifest records stops the run before it starts."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import tarfile
from pathlib import Path

from restoration.data.shards import DataConfig, make_train_loader
from restoration.train import main

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny.yaml"


def args(tmp_path: Path, shards: Path, name: str, *extra: str) -> list[str]:
    return [str(TINY), f"run.output_dir={tmp_path / 'runs'}", f"data.root={shards}", f"run.name={name}",
            "run.tracking=false", "run.log_model=false", *extra]  # fmt: skip


def train_shards(shards: Path) -> list[Path]:
    names = [s["name"] for s in json.loads((shards / "manifest.json").read_text())["shards"] if s["split"] == "train"]
    return [shards / n for n in names]


def test_a_garbage_only_shard_logs_a_few_lines_not_thousands(tmp_path, tiny_shards, caplog):
    shards = shutil.copytree(tiny_shards, tmp_path / "shards")
    for shard in train_shards(shards):
        shard.write_bytes(os.urandom(3000))
    with caplog.at_level(logging.WARNING):
        rc = main(args(tmp_path, shards, "garbage", "data.stall_timeout_s=4", "run.max_steps=2",
                       "data.verify_shards=false"))  # fmt: skip
    assert rc == 1
    data = [r for r in caplog.records if r.name == "restoration.data.shards"]
    assert 10 <= len(data) <= 20, f"{len(data)} warnings from the loader"
    assert "further ones: a line every 10 s" in data[9].getMessage()
    assert "such warnings so far in this process" in data[10].getMessage()


def keep_first_samples(shard: Path, keep: int) -> None:
    """Rewrite `shard` as a whole tar holding only its first `keep` samples (the manifest still counts them all):
    truncated at a sample boundary, so the reader meets no error, only fewer samples than recorded."""
    with tarfile.open(shard) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers() if m.isreg()]
    keys = list(dict.fromkeys(m.name.split(".")[0] for m, _ in members))[:keep]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for member, data in members:
            if member.name.split(".")[0] in keys:
                tar.addfile(member, io.BytesIO(data))
    shard.write_bytes(buffer.getvalue())


def test_the_corrupt_counter_counts_a_truncated_shard_once_per_pass_over_epochs(tmp_path, tiny_shards):
    shards = shutil.copytree(tiny_shards, tmp_path / "shards")
    for shard in train_shards(shards):
        keep_first_samples(shard, 3)  # 3 of the 6 samples the manifest records: each pass misses 3
    cfg = DataConfig(root=shards, image_size=64, num_workers=0, shuffle_buffer=4, batches_per_epoch=5)
    loader = make_train_loader(cfg, batch_size=2, rank=0, world_size=1, seed=0)
    counts = []
    for _ in range(3):
        assert sum(1 for _ in loader) == 5
        counts.append(loader.corrupt_count)
        # the truth: what the shard error handler recorded in this (the only) process, pass by pass
        assert loader.corrupt_count == loader.shard_errors.count, counts
    assert counts[0] > 0
    assert counts[0] < counts[1] < counts[2]
    assert all(c % 3 == 0 for c in counts)


def test_a_shard_swapped_for_another_stops_the_run_before_it_starts(tmp_path, tiny_shards, capsys):
    shards = shutil.copytree(tiny_shards, tmp_path / "shards")
    first, second = train_shards(shards)[:2]
    shutil.copyfile(second, first)  # a whole, readable shard: only its checksum tells it is not train-000000
    rc = main(args(tmp_path, shards, "swapped", "run.max_steps=2"))
    assert rc == 2
    captured = capsys.readouterr()
    err = [line for line in captured.err.splitlines() if line.strip()]
    assert len(err) == 1, captured.err
    assert err[0].startswith(f"error: {first}: not the shard {shards / 'manifest.json'} records (sha256 ")
    assert "rebuild the shards" in err[0]
    assert "data.verify_shards=false" in err[0]
    assert not (tmp_path / "runs" / "swapped" / "checkpoints").exists()

    # verified hashes are kept in the run: a resume hashes only shards that changed since
    shutil.copyfile(tiny_shards / first.name, first)
    assert main(args(tmp_path, shards, "swapped", "run.max_steps=2", "run.eval_every=0")) == 0
    cache = tmp_path / "runs" / "swapped" / "verified_shards.json"
    assert str(first.resolve()) in json.loads(cache.read_text())
    assert main(args(tmp_path, shards, "swapped", "run.max_steps=3", "run.eval_every=0")) == 0
    assert "hashed 0 of" in capsys.readouterr().out
