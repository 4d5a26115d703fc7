"""benchmarks/chroma_readouts.py: chroma readouts applied to prediction folders keep the luma and change the colour."""

from __future__ import annotations

import shutil

import numpy as np
import torch
from conftest import make_contest_folder

from benchmarks.chroma_readouts import answers, hue_jitter, luma_chroma, zero_below
from restoration.image_io import read_rgb


def test_readouts_keep_the_luma_and_an_ensemble_of_one_answer_is_that_answer(tmp_path):
    contest = make_contest_folder(tmp_path / "contest", count=2)
    preds = [shutil.copytree(contest / "gt", tmp_path / f"pred{i}") for i in range(2)]
    folders = answers(preds, tmp_path / "out")
    for name, folder in folders.items():
        for path in sorted(preds[0].glob("*.png")):
            y_pred, _ = luma_chroma(path)
            y_out, _ = luma_chroma(folder / path.name)
            assert (y_out - y_pred).abs().max() < 3 / 255, name  # uint8 rounding only
    ensemble = folders["chroma averaged over 2 folders"]
    for path in sorted(preds[0].glob("*.png")):
        assert np.abs(read_rgb(ensemble / path.name).astype(int) - read_rgb(path).astype(int)).max() <= 2


def test_zeroing_and_jitter_do_what_they_say():
    chroma = torch.tensor([0.001, 0.05, 0.0, -0.1]).reshape(1, 2, 1, 2)
    assert torch.equal(zero_below(0.01)(chroma, torch.Generator()), chroma * torch.tensor([0.0, 1.0]))
    turned = hue_jitter(20)(chroma, torch.Generator().manual_seed(0))
    assert torch.allclose(turned.norm(dim=1), chroma.norm(dim=1))  # the magnitude is kept, only the hue moves
    assert not torch.allclose(turned, chroma)
