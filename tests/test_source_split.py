"""benchmarks.source_split: whole sources go to one split, the test sources never into the shards."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from benchmarks import source_split


def photo_folder(root, sources: dict[str, int]):
    root.mkdir(parents=True)
    rows = ["file,source_package"]
    rng = np.random.default_rng(0)
    for source, count in sources.items():
        for i in range(count):
            name = f"{source}_{i}.png"
            Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / name)
            rows.append(f"{name},{source}")
    (root / "MANIFEST.csv").write_text("\n".join(rows) + "\n")
    return root


def test_sources_are_split_whole_and_the_test_set_never_enters_the_shards(tmp_path):
    a = photo_folder(tmp_path / "a", {"big": 5, "val1": 2})
    b = photo_folder(tmp_path / "b", {"test1": 3, "small": 1})
    out = tmp_path / "split"
    args = ["--photos", str(a), str(b), "--out", str(out), "--val", "val1", "--test", "test1"]
    assert source_split.main([*args, "--size", "32", "--test-size", "64"]) == 0
    split = json.loads((out / "split.json").read_text())
    assert split["photos"] == {"train": 6, "val": 2, "test": 3}
    assert sorted(p.name for p in (out / "test" / "test1").iterdir()) == [f"test1_{i}.png" for i in range(3)]
    manifest = json.loads((out / "shards-32" / "manifest.json").read_text())
    assert (manifest["totals"]["train"], manifest["totals"]["val"]) == (6, 2)
    assert manifest["args"]["val_groups"] == ["val1"]
    assert len(list((out / "contest-64" / "gt").glob("*.png"))) == 3  # every test photo, at the test size
    with pytest.raises(SystemExit, match="no photos of source"):
        source_split.main(["--photos", str(a), "--out", str(tmp_path / "x"), "--val", "val1", "--test", "nowhere"])


def test_the_preset_report_pairs_seeds_and_photos_against_the_reference(tmp_path):
    from benchmarks import preset_eval

    results = tmp_path / "results"
    results.mkdir()
    (tmp_path / "split.json").write_text(json.dumps({"test": str(tmp_path / "contest")}))
    mean = {"S": 0.8, "M": 0.5, "C": 0.1, "score": 0.4, "psnr": 20.0}
    (results / "anchors.json").write_text(json.dumps({k: {"mean": mean} for k in ("input", "telea", "true_gray")}))
    rng = np.random.default_rng(0)
    for seed in (0, 1, 2):
        for tag, shift in (("base", 0.0), ("better", 0.05)):
            images = [{"name": f"p{i}", "score": 0.5 + shift + rng.normal(0, 0.01), "C": 0.3 + 2 * shift}
                      for i in range(20)]  # fmt: skip
            m = {k: float(np.mean([im.get(k, 0.5) for im in images])) for k in ("S", "M", "C", "score")}
            (results / f"{tag}-seed{seed}.json").write_text(json.dumps({"mean": m, "count": 20, "images": images}))
    table = preset_eval.report(tmp_path, ["base", "better"], [0, 1, 2], "base")
    row = next(line for line in table.splitlines() if line.startswith("| better"))
    cells = [c.strip() for c in row.split("|")]
    lo = float(cells[8].split("[")[1].split(",")[0])
    assert lo > 0  # a consistent +0.05 on every photo of every seed: the interval is above 0
    assert table.startswith("20 test photos")


def test_ingest_scores_predictions_another_checkout_wrote(tmp_path):
    """`ingest` scores pred/TAG-seedK against the test photos like `score` does, so an older commit's predictions
    enter the report; a missing folder is named."""
    from PIL import Image

    from benchmarks import preset_eval

    contest = tmp_path / "contest"
    for sub in ("gt", "test_input"):
        (contest / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = ["input_image_path"]
    for i in range(2):
        rgb = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        gray = np.asarray(Image.fromarray(rgb).convert("L")).copy()
        gray[8:20, 8:20] = 128  # the lost region, filled with one gray value like the contest's test inputs
        Image.fromarray(rgb).save(contest / "gt" / f"p{i}.png")
        Image.fromarray(gray).save(contest / "test_input" / f"p{i}.png")
        rows.append(f"./test_input/p{i}.png")
    (contest / "test.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "split.json").write_text(json.dumps({"test": str(contest)}))
    pred = tmp_path / "pred" / "old-seed0"
    pred.mkdir(parents=True)
    for i in range(2):  # the truth itself, and a gray answer
        img = Image.open(contest / "gt" / f"p{i}.png")
        (img if i == 0 else img.convert("L").convert("RGB")).save(pred / f"p{i}.png")
    result = preset_eval.ingest(tmp_path, "old", 0)
    scores = {r["name"]: r for r in result["images"]}
    assert scores["p0"]["score"] == pytest.approx(1.0, abs=1e-6)
    assert scores["p1"]["C"] < 0.5
    kept = json.loads(preset_eval.result_path(tmp_path, "old", 0).read_text())
    assert kept["count"] == 2
    with pytest.raises(SystemExit, match="old-seed1"):
        preset_eval.ingest(tmp_path, "old", 1)
