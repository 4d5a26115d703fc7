"""Shards are rebuilt when the plan behind them changes, and shards of an older plan never survive a rebuild."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from fault_images import contest_pairs, write_contest_csv

import restoration.data.shard_build as bs
from restoration.data.shard_build import build


def keys_by_shard(out: Path) -> dict[str, list[str]]:
    found = {}
    for tar_path in sorted(out.glob("*.tar")):
        with tarfile.open(tar_path) as tar:
            found[tar_path.stem] = sorted({m.name.split(".", 1)[0] for m in tar.getmembers()})
    return found


def test_a_new_val_fraction_into_the_same_out_gives_the_same_shards_as_a_fresh_build(tmp_path):
    root = contest_pairs(tmp_path / "data", 11)
    out = tmp_path / "shards"
    build("contest", root, out, val_fraction=0.2, samples_per_shard=2, progress=False)
    manifest = build("contest", root, out, val_fraction=0.6, samples_per_shard=2, progress=False)
    fresh = build("contest", root, tmp_path / "fresh", val_fraction=0.6, samples_per_shard=2, progress=False)

    keys = [k for shard in keys_by_shard(out).values() for k in shard]
    assert sorted(keys) == sorted(set(keys))
    assert len(keys) == 11
    assert manifest["shards"] == fresh["shards"]
    assert manifest["args"]["val_fraction"] == 0.6
    assert sorted(p.name for p in out.glob("*.tar")) == sorted(p.name for p in (tmp_path / "fresh").glob("*.tar"))
    for tar_path in (tmp_path / "fresh").glob("*.tar"):
        assert (out / tar_path.name).read_bytes() == tar_path.read_bytes()
    receipts = sorted(p.stem for p in (out / ".receipts").glob("*.json"))
    assert receipts == sorted(s["name"].removesuffix(".tar") for s in manifest["shards"])


def test_fewer_rows_in_the_csv_remove_the_shards_that_are_no_longer_planned(tmp_path):
    root = contest_pairs(tmp_path / "data", 6)
    out = tmp_path / "shards"
    build("contest", root, out, val_fraction=0.0, samples_per_shard=2, progress=False)
    assert len(list(out.glob("*.tar"))) == 3
    write_contest_csv(root, [(f"./train_input/TRAIN_{i:05d}.png", f"./train_gt/TRAIN_{i:05d}.png") for i in (0, 2)])
    manifest = build("contest", root, out, val_fraction=0.0, samples_per_shard=2, progress=False)
    assert keys_by_shard(out) == {"train-000000": ["TRAIN_00000", "TRAIN_00002"]}
    assert [s["name"] for s in manifest["shards"]] == ["train-000000.tar"]


def test_a_rerun_with_the_same_plan_rebuilds_nothing_and_a_changed_argument_rebuilds_what_it_changes(
    tmp_path, monkeypatch
):
    root = contest_pairs(tmp_path / "data", 4)
    out = tmp_path / "shards"
    build("photos", root / "train_gt", out, size=16, val_fraction=0.5, samples_per_shard=1, progress=False)
    written = []
    real_write = bs.write_shard

    def counting_write(plan, *args, **kwargs):
        written.append(plan.name)
        return real_write(plan, *args, **kwargs)

    monkeypatch.setattr(bs, "write_shard", counting_write)
    build("photos", root / "train_gt", out, size=16, val_fraction=0.5, samples_per_shard=1, progress=False)
    assert written == []
    manifest = build("photos", root / "train_gt", out, size=16, val_fraction=0.5, samples_per_shard=1, seed=1,
                     progress=False)  # fmt: skip
    val = sorted(s["name"].removesuffix(".tar") for s in manifest["shards"] if s["split"] == "val")
    assert val
    assert sorted(written) == val
    written.clear()
    build("photos", root / "train_gt", out, size=8, val_fraction=0.5, samples_per_shard=1, seed=1, progress=False)
    assert sorted(written) == sorted(s["name"].removesuffix(".tar") for s in manifest["shards"])


def test_a_crashed_rebuild_leaves_no_manifest_of_the_old_plan(tmp_path, monkeypatch):
    root = contest_pairs(tmp_path / "data", 4)
    out = tmp_path / "shards"
    build("contest", root, out, val_fraction=0.0, samples_per_shard=2, progress=False)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bs, "write_shard", crash)
    with pytest.raises(KeyboardInterrupt):
        build("contest", root, out, val_fraction=0.5, samples_per_shard=2, progress=False)
    assert not (out / "manifest.json").exists()  # the loader says "build first" instead of mixing two plans
    monkeypatch.undo()
    manifest = build("contest", root, out, val_fraction=0.5, samples_per_shard=2, progress=False)
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_a_fixed_reject_is_picked_up_by_the_next_run(tmp_path):
    root = contest_pairs(tmp_path / "data", 3)
    good = (root / "train_input" / "TRAIN_00001.png").read_bytes()
    (root / "train_input" / "TRAIN_00001.png").write_bytes(good[: len(good) // 2])
    out = tmp_path / "shards"
    assert build("contest", root, out, val_fraction=0.0, progress=False)["totals"]["rejected"] == 1
    (root / "train_input" / "TRAIN_00001.png").write_bytes(good)
    manifest = build("contest", root, out, val_fraction=0.0, progress=False)
    assert manifest["totals"] == {"train": 3, "val": 0, "rejected": 0}
    assert keys_by_shard(out) == {"train-000000": ["TRAIN_00000", "TRAIN_00001", "TRAIN_00002"]}
