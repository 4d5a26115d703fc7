"""benchmarks/hue_bands.py: pixels land in the band of their hue, and the truth against itself has C 1."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from conftest import make_contest_folder

from benchmarks.hue_bands import BANDS, band_shares, folder_bands, main

NAMES = [name for name, _, _ in BANDS]


def test_pure_colours_fall_in_their_bands():
    # red, green, blue, gray: one pixel each
    rgb = torch.tensor([[255, 0, 0], [0, 200, 0], [0, 0, 255], [90, 90, 90]], dtype=torch.uint8)
    shares = band_shares(rgb.T.reshape(1, 3, 2, 2))
    assert shares.sum() == pytest.approx(1.0)
    assert shares[NAMES.index("gray or red 0")] == pytest.approx(0.5)  # pure red is hue 0, like gray
    assert shares[NAMES.index("green")] == pytest.approx(0.25)
    assert shares[NAMES.index("blue")] == pytest.approx(0.25)


def test_a_copy_of_the_truth_has_its_bands_and_c_1(tmp_path, capsys):
    contest = make_contest_folder(tmp_path / "contest", count=2)
    copy = shutil.copytree(contest / "gt", tmp_path / "copy")
    truth, none = folder_bands(contest / "gt", None)
    same, c = folder_bands(contest / "gt", copy)
    assert none is None
    assert c == pytest.approx(1.0)
    np.testing.assert_allclose(same, truth)
    assert main(["--gt", str(contest / "gt"), "--preds", str(copy)]) == 0
    assert "| copy |" in capsys.readouterr().out


def test_a_missing_prediction_names_the_file(tmp_path):
    contest = make_contest_folder(tmp_path / "contest", count=2)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit, match="missing"):
        folder_bands(contest / "gt", empty)
