"""make demo's comparison: the anchors are scored on the demo's held-out crops like a submission."""

from __future__ import annotations

import json

import pytest
from conftest import make_contest_folder, write_tiny_export

from restoration import demo
from restoration.weights import record_inference


@pytest.mark.parametrize(("chosen", "other"), [(None, "fill"), ("fill", "tile")])
def test_demo_prints_the_anchors_beside_the_trained_score(tmp_path, capsys, chosen, other):
    run_dir = write_tiny_export(tmp_path / "demo")  # a model directory, as the demo's run is
    if chosen:
        record_inference(run_dir, inpaint_mode=chosen)
    make_contest_folder(run_dir / "demo-contest", count=2)
    mean = {"S": 0.5, "M": 0.25, "C": 0.125, "score": 0.25, "psnr": 12.0}
    (run_dir / "demo-submission_scores.json").write_text(json.dumps({"mean": mean}))
    demo.print_comparison(run_dir)
    out = capsys.readouterr().out
    assert f"restoration-predict (trained, {chosen or 'tile'})" in out
    assert "the masked input unchanged" in out
    assert "classical fill (" in out
    assert f"same, --inpaint-mode {other}" in out
