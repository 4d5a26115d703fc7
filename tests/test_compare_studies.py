"""`benchmarks/compare_studies.py`: a study whose predictions are better scores above the reference, with a CI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks import compare_studies
from restoration.image_io import read_rgb, write_png_atomic


def make_study(root: Path, seeds: list[int], noise: float) -> Path:
    rng = np.random.default_rng(0)
    for i in range(6):
        gt = rng.integers(0, 256, (24, 24, 3)).astype(np.uint8)
        mask = np.zeros((24, 24), np.uint8)
        mask[6:18, 4:20] = 255  # white = lost
        write_png_atomic(gt, root / "eval" / "gt" / f"p{i}.png")
        write_png_atomic(mask, root / "eval" / "masks" / f"p{i}.png")
        for seed in seeds:
            pred = np.clip(gt + np.random.default_rng([seed, i]).normal(0, noise, gt.shape), 0, 255).astype(np.uint8)
            write_png_atomic(pred, root / f"seed-{seed}" / "eval" / "pred-b" / f"p{i}.png")
    return root


def test_the_better_study_is_ahead_with_an_interval_above_zero(tmp_path, capsys):
    worse = make_study(tmp_path / "base", [0, 1], noise=60)
    better = make_study(tmp_path / "variant", [0, 1], noise=10)
    assert compare_studies.main([str(worse), str(better), "--seeds", "0", "1", "--arms", "b"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| variant")]
    assert len(rows) == 1
    score_cell = rows[0].split("|")[7].strip()  # "+0.xxxx [+lo, +hi]"
    mean, lo = float(score_cell.split()[0]), float(score_cell.split("[")[1].split(",")[0])
    assert mean > 0.05
    assert lo > 0


def test_prediction_folders_within_one_study_compare_against_the_first(tmp_path, capsys):
    """`--preds`: two prediction folders of one study (e.g. (c) with and without carried state), the first the
    reference; the less noisy one is ahead on M with an interval above zero; several studies are refused."""
    study = make_study(tmp_path / "study", [0, 1], noise=60)
    for seed in (0, 1):
        for i in range(6):
            gt = np.asarray(read_rgb(study / "eval" / "gt" / f"p{i}.png"))
            pred = np.clip(gt + np.random.default_rng([seed, i, 7]).normal(0, 10, gt.shape), 0, 255).astype(np.uint8)
            write_png_atomic(pred, study / f"seed-{seed}" / "eval" / "pred-c-carry" / f"p{i}.png")
    args = [str(study), "--seeds", "0", "1", "--preds", "b", "c-carry"]
    assert compare_studies.main(args) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| c-carry"))
    m_cell = row.split("|")[6].strip()
    assert float(m_cell.split()[0]) > 0.05
    assert float(m_cell.split("[")[1].split(",")[0]) > 0
    with pytest.raises(SystemExit, match="one study"):
        compare_studies.main([str(study), str(study), "--preds", "b", "c-carry"])
