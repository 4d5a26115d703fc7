"""The fill-prior study's scripts: the fill comparison and the per-photo MAT-against-fill evaluation run end to end."""

from __future__ import annotations

import json

import numpy as np
from conftest import make_contest_folder, write_tiny_export
from PIL import Image

from benchmarks import fill_prior, prior_eval


def test_fill_comparison_runs_on_a_folder_of_photos(tmp_path, capsys):
    yy, xx = np.mgrid[0:80, 0:96]
    for i in range(2):
        rgb = np.stack([(xx * (i + 1) + yy) % 256, (2 * yy) % 256, xx % 256], -1).astype(np.uint8)
        Image.fromarray(rgb).save(tmp_path / f"p{i}.jpg")
    assert fill_prior.main(["--photos", str(tmp_path), "--count", "2", "--size", "64", "--steps", "8"]) == 0
    out = capsys.readouterr().out
    assert "biharmonic" in out
    assert "harmonic-8" in out


def test_an_untrained_fill_prior_scores_as_the_harmonic_fill(tmp_path, capsys):
    contest = make_contest_folder(tmp_path / "contest", count=3)
    fill = write_tiny_export(tmp_path / "fill" / "final", ("mat_G",), overrides=("mat.prior=fill",))
    none = write_tiny_export(tmp_path / "none" / "final", ("mat_G",))
    args = ["--contest", str(contest), "--arm", "none", str(none), "--arm", "fill", str(fill)]
    assert prior_eval.main([*args, "--json", str(tmp_path / "r.json")]) == 0
    assert "MAT fill - MAT none" in capsys.readouterr().out
    results = json.loads((tmp_path / "r.json").read_text())
    tile, harmonic = results["fill"]["tile"][0]["M"], results["harmonic"]["M"]
    assert tile.keys() == harmonic.keys()
    assert all(abs(tile[k] - harmonic[k]) < 0.01 for k in tile)  # the network returns its fill, to rounding
    assert results["fill"]["prior_gain"] == [0.0]
