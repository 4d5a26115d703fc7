"""`benchmarks/gpu_check.sh --cpu --tiny`: the GPU check's every section runs on CPU in seconds, so it never rots."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks import gpu_check

ROOT = Path(__file__).resolve().parents[1]


def test_cpu_tiny_check_runs_every_section(tmp_path):
    scratch = tmp_path / "scratch"  # the check's own temporary folder: it must be empty again at the end
    scratch.mkdir()
    env = {**os.environ, "PYTHON": sys.executable, "TMPDIR": str(scratch)}
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(ROOT / "benchmarks/gpu_check.sh"), "--cpu", "--tiny", "--out", str(out)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)  # fmt: skip
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert not [p.name for p in scratch.iterdir() if p.name.startswith("gpu-check-")]
    tmp_path = out
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    sections = report["sections"]
    assert list(sections) == ["env", "gpu_tests", "mat_ours", "mat_official", "attention", "joint_train", "predict"]
    for name, section in sections.items():
        assert section["status"] == "ok", (name, section["status"])
        assert section["rows"], name
    ours = sections["mat_ours"]["rows"]
    assert {r["precision"] for r in ours} == {"bf16", "fp32"}
    assert all(r["img_s"] > 0 and r["flops_per_img"] > 0 for r in ours)
    assert all(r["impl"] == "official-recipe-standin" for r in sections["mat_official"]["rows"])
    joint = sections["joint_train"]["rows"][0]  # 3 steps: the first apart, 2 timed by the trainer
    assert joint["steps"] == 2
    assert joint["img_s"] > 0
    assert joint["first_step_s"] > 0
    assert "# GPU check (cpu-tiny)" in (tmp_path / "gpu_check.md").read_text()


def test_report_table_computes_mfu_and_the_ratio_to_the_official_code():
    ours = {"impl": "ours", "precision": "bf16", "batch": 4, "status": "ok", "img_s": 40.0, "step_s": 0.1,
            "peak_gib": 20.0, "flops_per_img": 4e12}  # fmt: skip
    official = {"impl": "official", "precision": "fp32", "batch": 4, "status": "ok", "img_s": 8.0, "step_s": 0.5}
    rows = [ours, official]
    sections = {"env": {"status": "ok", "rows": [{"device": "NVIDIA H200"}], "seconds": 1},
                "mat_ours": {"status": "ok", "rows": rows[:1], "seconds": 1},
                "mat_official": {"status": "ok", "rows": rows[1:], "seconds": 1},
                "predict": {"status": "skipped (time budget)", "rows": [], "seconds": 0}}  # fmt: skip
    report = {"mode": "gpu", "device": "cuda", "total_s": 3.0, "budget_s": 480, "sections": sections}
    text = gpu_check.markdown(report)
    mfu = 4e12 * 40.0 / (gpu_check.PEAK_TFLOPS["bf16"] * 1e12) * 100
    assert f"| ours | bf16 | 4 | 40.00 | 0.100 | 20.0 | {mfu:.1f} % | 5.00x |" in text
    assert "best ours 40.00 img/s vs best official 8.00 img/s = 5.00x" in text
    assert "| predict | skipped (time budget) | 0 |" in text
