"""Loaders: exact gray after augmentation, corrupt samples skipped and counted, batches unchanged by the shared
sample stage, and 2 real CPU ranks."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image

from restoration.data.color import rgb_to_gray_u8, signed_to_u8
from restoration.data.masks import sample_known_mask
from restoration.data.shard_build import build_photo_shards
from restoration.data.shards import (
    CorruptSample,
    DataConfig,
    ShardErrors,
    ValLoader,
    _augmenter,
    collate,
    decode,
    make_train_loader,
    make_val_loader,
    prepare_batch,
    read_manifest,
    shard_urls,
    train_samples_to_batches,
)

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


def rewrite_shards(src: Path, dst: Path, edit: Callable[[str, str, bytes], bytes | None]) -> Path:
    """A copy of a shard directory with every tar member passed through `edit(shard, member, data)`; None drops it."""
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    for name in (s["name"] for s in manifest["shards"]):
        with tarfile.open(dst / name) as tar:
            members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
        with tarfile.open(dst / name, "w") as tar:
            for m, data in members:
                data = edit(name, m.name, data)
                if data is not None:
                    m.size = len(data)
                    tar.addfile(m, io.BytesIO(data))
    return dst


def test_corrupt_samples_are_skipped_and_counted(shards, tmp_path):
    first = shard_urls(shards, "train")[0].rsplit("/", 1)[-1]

    def garbage_gt_in_first_shard(shard: str, member: str, data: bytes) -> bytes:
        return b"garbage" if shard == first and member.endswith("gt.png") else data

    bad = rewrite_shards(shards, tmp_path / "bad", garbage_gt_in_first_shard)
    cfg = DataConfig(root=bad, image_size=32, num_workers=0, shuffle_buffer=4, batches_per_epoch=6)
    loader = make_train_loader(cfg, batch_size=2, rank=0, world_size=1, seed=0)
    assert sum(1 for _ in loader) == 6
    assert loader.corrupt_count > 0


# -- the sample stage before train and val shared it (restoration/data/shards.py at c799fae), as the reference -----


def reference_train_stage(cfg: DataConfig, batch_size: int, seed: int, rank: int):
    def stage(samples):
        rng = np.random.default_rng([seed, rank, 0])
        corrupt_total, corrupt_pending, batch = 0, 0, []
        for raw in samples:
            try:
                sample = decode(raw, cfg.image_size)
            except CorruptSample as err:
                corrupt_total += 1
                corrupt_pending += 1
                if corrupt_total > cfg.max_corrupt:
                    raise RuntimeError(f"more than data.max_corrupt={cfg.max_corrupt} corrupt samples") from err
                continue
            if "known" not in sample:
                sample["known"], sample["fill"] = sample_known_mask(rng, cfg.image_size, cfg.image_size, cfg.mask)
            batch.append(sample)
            if len(batch) == batch_size:
                yield collate(batch, corrupt_pending)
                batch, corrupt_pending = [], 0

    return stage


def reference_val_batches(cfg: DataConfig, batch_size: int, rank: int, world_size: int, raws: list[dict]):
    batch = []
    for index, raw in enumerate(raws):
        if index % world_size != rank:
            continue
        try:
            sample = decode(raw, cfg.image_size)
        except CorruptSample:
            continue
        if "known" not in sample:
            rng = np.random.default_rng(list(sample["key"].encode()))
            sample["known"], sample["fill"] = sample_known_mask(rng, *sample["gt"].shape[:2], cfg.mask)
        batch.append(sample)
        if len(batch) == batch_size:
            yield collate(batch, 0)
            batch = []
    if batch:
        yield collate(batch, 0)


def raw_samples(root: Path, split: str) -> list[dict]:
    return list(wds.DataPipeline(wds.SimpleShardList(shard_urls(root, split)), wds.tarfile_to_samples()))


def assert_same_batches(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want) > 0
    for a, b in zip(got, want):
        assert a.keys() == b.keys()
        assert a["key"] == b["key"]
        assert a["corrupt"] == b["corrupt"]
        for name in ("gt", "known", "fill"):
            assert a[name].dtype == b[name].dtype, name
            assert torch.equal(a[name], b[name]), name


def test_train_and_val_batches_equal_the_reference_stage(shards, tmp_path):
    """Masks drawn in the stage (no baked val masks), one corrupt sample per split, a resize in decode."""
    corrupted = {"train": False, "val": False}

    def unmask_and_break_one(shard: str, member: str, data: bytes) -> bytes | None:
        if member.endswith((".known.png", ".input.png", ".json")):
            return None
        split = shard.split("-")[0]
        if member.endswith(".gt.png") and not corrupted[split] and shard.endswith("1.tar"):
            corrupted[split] = True
            return b"garbage"
        return data

    root = rewrite_shards(shards, tmp_path / "unmasked", unmask_and_break_one)
    cfg = DataConfig(root=root, image_size=24, num_workers=0)
    train_raws = raw_samples(root, "train")
    got = list(train_samples_to_batches(cfg, 3, seed=5, rank=1, shard_errors=ShardErrors("train"))(iter(train_raws)))
    want = list(reference_train_stage(cfg, 3, seed=5, rank=1)(iter(train_raws)))
    assert_same_batches(got, want)
    assert sum(b["corrupt"] for b in got) == 1
    val_raws = raw_samples(root, "val")
    loaders = [ValLoader(cfg, batch_size=2, rank=rank, world_size=2) for rank in (0, 1)]
    for rank, loader in enumerate(loaders):
        got = list(loader)
        assert_same_batches(got, list(reference_val_batches(cfg, 2, rank, 2, val_raws)))
        assert all(b["corrupt"] == 0 for b in got)
    assert sum(loader.corrupt_count for loader in loaders) == 1


def test_val_masks_are_seeded_by_the_sample_key_whatever_the_rank(shards, tmp_path):
    root = rewrite_shards(shards, tmp_path / "unmasked", lambda _, m, d: None if m.endswith(".known.png") else d)
    cfg = DataConfig(root=root, image_size=32)
    single = {k: m for b in ValLoader(cfg, 3, 0, 1) for k, m in zip(b["key"], b["known"])}
    split = {k: m for r in (0, 1) for b in ValLoader(cfg, 2, r, 2) for k, m in zip(b["key"], b["known"])}
    assert single.keys() == split.keys()
    assert all(torch.equal(single[k], split[k]) for k in single)


def test_the_augmenter_built_once_draws_and_computes_what_a_fresh_one_would():
    img, mask = torch.rand(4, 3, 32, 32), (torch.rand(4, 1, 32, 32) > 0.5).float()
    runs = []
    for build in (_augmenter.__wrapped__, _augmenter):  # a new module per step (as before) vs the cached one
        torch.manual_seed(0)
        runs.append([build(32, 0.6)(img, mask) for _ in range(8)])
    for (a_img, a_mask), (b_img, b_mask) in zip(*runs):
        assert torch.equal(a_img, b_img)
        assert torch.equal(a_mask, b_mask)
    assert _augmenter(32, 0.6) is _augmenter(32, 0.6)


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


def test_the_libpng_path_gives_pil_pixels_and_leaves_every_other_png_to_pil():
    from restoration.data.shards import _png, _png_array

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)

    def png(img: Image.Image) -> bytes:
        buf = io.BytesIO()
        img.save(buf, format="PNG", compress_level=1)
        return buf.getvalue()

    for img, mode in ((Image.fromarray(rgb), "RGB"), (Image.fromarray(rgb[..., 0]), "L")):
        data = png(img)
        fast = _png_array(data, mode, 32)
        assert fast is not None
        assert np.array_equal(fast, np.asarray(_png(data, mode)))
        assert _png_array(data, mode, 16) is None  # another size: PIL decodes, decode() resizes
    others = [Image.fromarray(rgb).convert("RGBA"), Image.fromarray(rgb).convert("P"),
              Image.fromarray(rgb[..., 0].astype(np.uint16) * 257), Image.fromarray(rgb[..., 0])]  # fmt: skip
    assert all(_png_array(png(img), "RGB", 32) is None for img in others)
    damaged = png(Image.fromarray(rgb))
    assert _png_array(damaged[: len(damaged) // 2], "RGB", 32) is None  # PIL then names the error
    assert _png_array(b"not a png at all, long enough to have a header", "RGB", 32) is None


@pytest.fixture(scope="module")
def one_shard(tmp_path_factory) -> Path:
    """All train samples in one shard (what the CPU preset builds from a small photo folder)."""
    base = tmp_path_factory.mktemp("one-shard")
    rng = np.random.default_rng(1)
    for g in range(8):
        (base / "photos" / f"g{g}").mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(
                base / "photos" / f"g{g}" / f"{i}.png"
            )
    build_photo_shards(base / "photos", base / "shards", size=32, val_fraction=0.2, samples_per_shard=100)
    assert len(shard_urls(base / "shards", "train")) == 1
    return base / "shards"


@pytest.mark.parametrize("num_workers", [0, 1])
def test_epochs_differ_and_every_sample_is_reached_from_one_shard(one_shard, num_workers):
    """Each epoch continues the stream: new order and new masks, never the first epoch again; and with a short
    `batches_per_epoch` the later samples of the shard are reached too (not the first few over and over)."""
    total = sum(s["count"] for s in read_manifest(one_shard)["shards"] if s["split"] == "train")
    cfg = DataConfig(root=one_shard, image_size=32, num_workers=num_workers, shuffle_buffer=4, batches_per_epoch=2)
    loader = make_train_loader(cfg, batch_size=2, rank=0, world_size=1, seed=0)
    epochs = [[(tuple(b["key"]), b["known"].clone()) for b in loader] for _ in range(3 * total // 4 + 2)]
    assert all(len(e) == 2 for e in epochs)
    first = epochs[0]
    for later in epochs[1:]:
        assert not all(a[0] == b[0] and torch.equal(a[1], b[1]) for a, b in zip(first, later))
    seen = {key for epoch in epochs for keys, _ in epoch for key in keys}
    assert len(seen) == total
    # a sample met again later gets another mask
    masks: dict[str, list] = {}
    for epoch in epochs:
        for keys, known in epoch:
            for key, k in zip(keys, known):
                masks.setdefault(key, []).append(k)
    again = [m for m in masks.values() if len(m) > 1]
    assert again
    assert any(not torch.equal(m[0], m[1]) for m in again)
