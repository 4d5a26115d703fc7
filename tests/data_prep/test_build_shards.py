"""Shard building: bad inputs never land and are reported, exact masks, resume after a crash is byte-identical."""

from __future__ import annotations

import csv
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import restoration.data.shard_build as bs
from data_prep.build_shards import main
from restoration.data.shard_build import build
from restoration.data.shard_sources import BuildError


def make_contest_layout(root: Path, good: int = 16, seed: int = 0) -> dict[str, np.ndarray]:
    """A contest-style folder with `good` valid pairs and one of each kind of bad input; returns true holes."""
    rng = np.random.default_rng(seed)
    (root / "train_input").mkdir(parents=True)
    (root / "train_gt").mkdir()
    rows, holes = [], {}
    for i in range(good):
        key = f"TRAIN_{i:05d}"
        gt = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        gray = np.asarray(Image.fromarray(gt).convert("L")).copy()
        hole = np.zeros((32, 32), bool)
        y, x = rng.integers(0, 16, 2)
        hole[y : y + 12, x : x + 10] = True
        fill = int(rng.integers(0, 256))
        gray[hole] = fill
        Image.fromarray(gt).save(root / "train_gt" / f"{key}.png")
        Image.fromarray(gray).save(root / "train_input" / f"{key}.png")
        rows.append((f"./train_input/{key}.png", f"./train_gt/{key}.png"))
        holes[key] = hole
    gt_ok = root / "train_gt" / "TRAIN_00000.png"
    # truncated image
    data = (root / "train_gt" / "TRAIN_00001.png").read_bytes()
    (root / "train_input" / "BAD_trunc.png").write_bytes(data[: len(data) // 2])
    rows.append(("./train_input/BAD_trunc.png", "./train_gt/TRAIN_00001.png"))
    # not an image
    (root / "train_input" / "BAD_text.png").write_text("hello")
    rows.append(("./train_input/BAD_text.png", "./train_gt/TRAIN_00002.png"))
    # size mismatch
    Image.new("L", (16, 16)).save(root / "train_input" / "BAD_size.png")
    rows.append(("./train_input/BAD_size.png", str(gt_ok.relative_to(root))))
    # color input
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / "train_input" / "BAD_rgb.png")
    rows.append(("./train_input/BAD_rgb.png", str(gt_ok.relative_to(root))))
    # missing file, escaping paths, duplicate key, key with dots
    rows.append(("./train_input/BAD_missing.png", "./train_gt/TRAIN_00003.png"))
    rows.append(("../outside.png", "./train_gt/TRAIN_00003.png"))
    rows.append(("/etc/passwd", "./train_gt/TRAIN_00003.png"))
    rows.append(("./train_input/TRAIN_00004.png", "./train_gt/TRAIN_00004.png"))
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(root / "train_input" / "BAD.dots.png")
    rows.append(("./train_input/BAD.dots.png", str(gt_ok.relative_to(root))))
    with open(root / "train.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["input_image_path", "gt_image_path"])
        writer.writerows(rows)
    return holes


def read_shards(out: Path) -> dict[str, dict[str, bytes]]:
    samples: dict[str, dict[str, bytes]] = {}
    for tar_path in sorted(out.glob("*.tar")):
        with tarfile.open(tar_path) as tar:
            for member in tar.getmembers():
                key, field = member.name.split(".", 1)
                samples.setdefault(key, {})[field] = tar.extractfile(member).read()
    return samples


def test_contest_build_keeps_every_valid_pair_once_and_reports_every_bad_input(tmp_path):
    holes = make_contest_layout(tmp_path / "data")
    out = tmp_path / "shards"
    manifest = build("contest", tmp_path / "data", out, val_fraction=0.25, samples_per_shard=5, progress=False)
    samples = read_shards(out)
    assert sorted(samples) == sorted(holes)
    assert manifest["totals"]["train"] + manifest["totals"]["val"] == len(holes)
    assert sum(s["count"] for s in manifest["shards"]) == len(holes)
    for key, hole in holes.items():
        known = np.asarray(Image.open(io.BytesIO(samples[key]["known.png"])))
        np.testing.assert_array_equal(known == 0, hole)
    with open(out / "rejected.csv") as fh:
        rejected = {row["path"]: row["reason"] for row in csv.DictReader(fh)}
    reasons = " | ".join(f"{p}: {r}" for p, r in rejected.items())
    for expected in ("BAD_trunc", "BAD_text", "BAD_size", "BAD_rgb", "BAD_missing", "outside", "passwd",
                     "duplicate key", "dot"):  # fmt: skip
        assert expected in reasons, (expected, reasons)
    assert manifest["totals"]["rejected"] == len(rejected) == 9


def test_strict_stops_at_the_first_bad_input(tmp_path, capsys):
    make_contest_layout(tmp_path / "data")
    with pytest.raises(BuildError):
        build("contest", tmp_path / "data", tmp_path / "s", strict=True, progress=False)
    assert main(["contest", "--root", str(tmp_path / "data"), "--out", str(tmp_path / "s2"), "--strict"]) == 1
    assert "error:" in capsys.readouterr().err


def test_unreadable_csv_and_empty_folder_are_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BuildError, match="no images"):
        build("photos", tmp_path / "empty", tmp_path / "o", progress=False)
    with pytest.raises(BuildError, match="cannot read the csv"):
        build("contest", tmp_path / "empty", tmp_path / "o", progress=False)


def test_resume_after_a_crash_gives_identical_shards_and_manifest(tmp_path, monkeypatch):
    make_contest_layout(tmp_path / "data")
    ref = tmp_path / "ref"
    build("contest", tmp_path / "data", ref, val_fraction=0.25, samples_per_shard=3, progress=False)

    out = tmp_path / "resumed"
    real_write = bs.write_shard
    calls = {"n": 0}

    def crashing_write(plan, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # die half-way through a shard, leaving a partial .tmp file behind
            (out / f"{plan.name}.tar.tmp").write_bytes(b"partial")
            raise KeyboardInterrupt
        return real_write(plan, *args, **kwargs)

    monkeypatch.setattr(bs, "write_shard", crashing_write)
    with pytest.raises(KeyboardInterrupt):
        build("contest", tmp_path / "data", out, val_fraction=0.25, samples_per_shard=3, progress=False)
    monkeypatch.setattr(bs, "write_shard", real_write)
    first_tar = sorted(out.glob("*.tar"))[0]
    first_tar.write_bytes(first_tar.read_bytes()[:100])  # a damaged complete shard is detected and rebuilt
    build("contest", tmp_path / "data", out, val_fraction=0.25, samples_per_shard=3, progress=False)
    assert not list(out.glob("*.tmp"))
    ref_manifest = json.loads((ref / "manifest.json").read_text())
    new_manifest = json.loads((out / "manifest.json").read_text())
    assert new_manifest["shards"] == ref_manifest["shards"]
    for tar_path in ref.glob("*.tar"):
        assert (out / tar_path.name).read_bytes() == tar_path.read_bytes()


def test_photo_build_bakes_seeded_val_masks(tmp_path):
    photos = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for group in ("a", "b", "c", "d"):
        (photos / group).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(photos / group / f"p{i}.jpg")
    out = tmp_path / "shards"
    manifest = build("photos", photos, out, size=32, val_fraction=0.5, samples_per_shard=4, progress=False)
    samples = read_shards(out)
    assert len(samples) == 12
    val = [s for s in manifest["shards"] if s["split"] == "val"]
    assert val, "expected some val shards"
    groups_by_split = {}
    for shard in manifest["shards"]:
        with tarfile.open(out / shard["name"]) as tar:
            for m in tar.getmembers():
                if m.name.endswith(".json"):
                    meta = json.loads(tar.extractfile(m).read())
                    groups_by_split.setdefault(meta["group"], set()).add(shard["split"])
                    if shard["split"] == "val":
                        key = m.name.split(".")[0]
                        assert {"known.png", "input.png"} <= set(samples[key])
    assert all(len(splits) == 1 for splits in groups_by_split.values())  # a group never spans both splits
    again = tmp_path / "again"
    build("photos", photos, again, size=32, val_fraction=0.5, samples_per_shard=4, progress=False)
    assert json.loads((again / "manifest.json").read_text())["shards"] == manifest["shards"]


def test_contest_test_csv_with_inputs_only(tmp_path):
    root = tmp_path / "data"
    (root / "test_input").mkdir(parents=True)
    rows = []
    for i in range(3):
        Image.fromarray(np.full((16, 16), 40 * i, np.uint8)).save(root / "test_input" / f"TEST_{i:03d}.png")
        rows.append((f"./test_input/TEST_{i:03d}.png",))
    with open(root / "test.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([("input_image_path",), *rows])
    manifest = build("contest", root, tmp_path / "out", csv_name="test.csv", val_fraction=0.0, progress=False)
    samples = read_shards(tmp_path / "out")
    assert manifest["totals"]["train"] == 3
    assert all(set(s) == {"input.png", "json"} for s in samples.values())


def test_workers_build_the_same_bytes_and_stop_at_the_first_bad_input_under_strict(tmp_path):
    """The pool makes the samples, this process writes them in order: shards, manifest and rejects are those of a
    one-process build, whatever the number of shards (here fewer shards than workers)."""
    make_contest_layout(tmp_path / "data")
    outs = {}
    for workers in (1, 3):
        outs[workers] = tmp_path / f"w{workers}"
        build("contest", tmp_path / "data", outs[workers], val_fraction=0.25, samples_per_shard=100, workers=workers,
              progress=False)  # fmt: skip
    for name in ("manifest.json", "rejected.csv"):
        assert (outs[3] / name).read_text().replace("w3", "w1") == (outs[1] / name).read_text()
    tars = sorted(p.name for p in outs[1].glob("*.tar"))
    assert tars == sorted(p.name for p in outs[3].glob("*.tar"))
    assert all((outs[1] / t).read_bytes() == (outs[3] / t).read_bytes() for t in tars)
    lines = (tmp_path / "data" / "train.csv").read_text().splitlines()
    decode_time = ("./train_input/TRAIN_", "./train_input/BAD_trunc")  # good pairs and one only a decode rejects
    sample_level = [lines[0]] + [line for line in dict.fromkeys(lines[1:]) if line.startswith(decode_time)]
    (tmp_path / "data" / "strict.csv").write_text("\n".join(sample_level) + "\n")
    with pytest.raises(BuildError, match="BAD_trunc"):
        build("contest", tmp_path / "data", tmp_path / "strict", csv_name="strict.csv", strict=True, workers=2,
              samples_per_shard=4, progress=False)  # fmt: skip


def test_val_groups_hold_out_whole_sources(tmp_path):
    """One folder per photo source; `--val-groups` puts exactly those sources (and all of them) in val."""
    rng = np.random.default_rng(0)
    for source, count in (("alpha", 4), ("beta", 3), ("gamma", 2)):
        for i in range(count):
            folder = tmp_path / "photos" / source / ("sub" if i % 2 else "")
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / f"{source}{i}.png")
    args = ["photos", "--root", str(tmp_path / "photos"), "--size", "32", "--samples-per-shard", "10"]
    assert main([*args, "--out", str(tmp_path / "s"), "--val-groups", "beta,gamma"]) == 0
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert (manifest["totals"]["train"], manifest["totals"]["val"]) == (4, 5)
    assert manifest["args"]["val_groups"] == ["beta", "gamma"]
    for shard in manifest["shards"]:
        with tarfile.open(tmp_path / "s" / shard["name"]) as tar:
            keys = {m.name.split(".")[0] for m in tar.getmembers()}
        assert all(("alpha" in k) == (shard["split"] == "train") for k in keys)
    with pytest.raises(BuildError, match="no such group"):
        build("photos", tmp_path / "photos", tmp_path / "t", size=32, val_groups=["delta"], progress=False)


def test_several_photo_folders_are_one_dataset_held_out_photo_by_photo(tmp_path):
    rng = np.random.default_rng(0)
    for folder, count in (("photos", 12), ("photos-extra", 8)):
        (tmp_path / folder).mkdir()
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(tmp_path / folder / f"p{i}.jpg")
    out = tmp_path / "shards"
    roots = [str(tmp_path / "photos"), str(tmp_path / "photos-extra")]
    assert main(["photos", "--root", *roots, "--out", str(out), "--size", "32", "--val-fraction", "0.3"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["totals"]["train"] + manifest["totals"]["val"] == 20
    assert manifest["args"]["roots"] == roots
    keys = set()
    for shard in out.glob("*.tar"):
        with tarfile.open(shard) as tar:
            keys |= {m.name.split(".")[0] for m in tar.getmembers()}
    assert {k.split("_")[0] for k in keys} == {"photos", "photos-extra"}  # keys relative to the common parent
    # flat folders: each photo is its own group, so the val split takes photos of both folders, not one folder
    val_keys = set()
    for shard in out.glob("val-*.tar"):
        with tarfile.open(shard) as tar:
            val_keys |= {m.name.split(".")[0] for m in tar.getmembers()}
    assert 0 < len(val_keys) < 20
    with pytest.raises(BuildError, match="give each photo folder once"):
        build("photos", [tmp_path / "photos", tmp_path / "photos"], tmp_path / "o", size=32, progress=False)
