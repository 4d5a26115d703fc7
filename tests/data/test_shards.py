"""Loaders: exact gray after augmentation, corrupt samples skipped and counted, and 2 real CPU ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from data_prep.build_shards import build_photo_shards
from restoration.data.color import rgb_to_gray_u8, signed_to_u8
from restoration.data.shards import DataConfig, make_train_loader, make_val_loader, prepare_batch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("loader")
    rng = np.random.default_rng(0)
    for g in range(6):
        (base / "photos" / f"g{g}").mkdir(parents=True)
        for i in range(5):
            img = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
            Image.fromarray(img).save(base / "photos" / f"g{g}" / f"{i}.png")
    build_photo_shards(base / "photos", base / "shards", size=32, val_fraction=0.35, samples_per_shard=4)
    return base / "shards"


def test_prepared_batches_have_exact_gray_and_a_consistent_input(shards):
    cfg = DataConfig(root=shards, image_size=32, num_workers=0, shuffle_buffer=4)
    batch = next(iter(make_train_loader(cfg, batch_size=4, rank=0, world_size=1, seed=0)))
    out = prepare_batch(batch, device=torch.device("cpu"), cfg=cfg, train=True)
    rgb_u8 = signed_to_u8(out["rgb"])
    assert torch.equal(signed_to_u8(out["gray"]), rgb_to_gray_u8(rgb_u8))
    known = out["known_mask"]
    assert set(known.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(out["input"] * known, out["gray"] * known)
    assert (known == 0).any()


def test_corrupt_samples_are_skipped_and_counted(shards, tmp_path):
    import shutil
    import tarfile

    bad = tmp_path / "bad"
    shutil.copytree(shards, bad)
    manifest = json.loads((bad / "manifest.json").read_text())
    train = [s["name"] for s in manifest["shards"] if s["split"] == "train"]
    for name in train:  # replace every gt.png in the first shard with garbage
        src = bad / name
        members = []
        with tarfile.open(src) as tar:
            for m in tar.getmembers():
                data = tar.extractfile(m).read()
                members.append((m, b"garbage" if m.name.endswith("gt.png") and name == train[0] else data))
        with tarfile.open(src, "w") as tar:
            for m, data in members:
                import io

                m.size = len(data)
                tar.addfile(m, io.BytesIO(data))
    cfg = DataConfig(root=bad, image_size=32, num_workers=0, shuffle_buffer=4, batches_per_epoch=6)
    loader = make_train_loader(cfg, batch_size=2, rank=0, world_size=1, seed=0)
    assert sum(1 for _ in loader) == 6
    assert loader.corrupt_count > 0


@pytest.mark.slow
def test_two_ranks_get_equal_train_batches_and_disjoint_complete_val(shards, tmp_path):
    script = tmp_path / "ranks.py"
    script.write_text(
        textwrap.dedent(f"""
        import json, sys, torch.distributed as dist
        from pathlib import Path
        from restoration.data.shards import DataConfig, make_train_loader, make_val_loader
        dist.init_process_group("gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        cfg = DataConfig(root=Path({str(shards)!r}), image_size=32, num_workers=1, shuffle_buffer=4)
        train = sum(1 for _ in make_train_loader(cfg, batch_size=3, rank=rank, world_size=world, seed=0))
        keys = [k for b in make_val_loader(cfg, batch_size=2, rank=rank, world_size=world) for k in b["key"]]
        result = {{"world": world, "train": train, "val": keys}}
        Path({str(tmp_path)!r}, f"rank{{rank}}.json").write_text(json.dumps(result))
        dist.destroy_process_group()
    """)
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world"] == 2 for r in ranks)
    assert ranks[0]["train"] == ranks[1]["train"] > 0
    manifest = json.loads((shards / "manifest.json").read_text())
    total_val = sum(s["count"] for s in manifest["shards"] if s["split"] == "val")
    val0, val1 = set(ranks[0]["val"]), set(ranks[1]["val"])
    assert not val0 & val1
    assert len(val0) + len(val1) == len(ranks[0]["val"]) + len(ranks[1]["val"]) == total_val
    single = [k for b in make_val_loader(DataConfig(root=shards, image_size=32), batch_size=2, rank=0, world_size=1)
              for k in b["key"]]  # fmt: skip
    assert val0 | val1 == set(single)
