"""Our MAT equals the official generator and discriminator: runs the golden fixture's own checker.

The fixture is found through RESTORATION_MAT_FIXTURE (.ci/run sets it). Without it the test skips with the reason,
unless RESTORATION_REQUIRE_FIXTURES=1 (CI), where a missing fixture is a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def fixture_dir() -> Path:
    value = os.environ.get("RESTORATION_MAT_FIXTURE")
    path = Path(value) if value else None
    if path is None or not (path / "check_parity.py").is_file():
        reason = f"MAT golden fixture not found (RESTORATION_MAT_FIXTURE={value!r})"
        if os.environ.get("RESTORATION_REQUIRE_FIXTURES") == "1":
            pytest.fail(reason + " but RESTORATION_REQUIRE_FIXTURES=1")
        pytest.skip(reason)
    return path


def run_checker(*args: str) -> str:
    cmd = [sys.executable, str(fixture_dir() / "check_parity.py"), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=1200)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert " 0 failed" in output
    return output


@pytest.mark.slow
def test_generator_parity_all_resolutions_variants_and_stage1():
    run_checker(
        "--model-factory", "restoration.models.mat_checkpoint:build_official_generator",
        "--convert", "restoration.models.mat_checkpoint:convert_official_state_dict",
        "--res", "all", "--variant", "all", "--dropout", "seed", "--stage1",
    )  # fmt: skip


@pytest.mark.slow
def test_discriminator_parity_with_r1_gradients():
    run_checker(
        "--component", "D",
        "--model-factory", "restoration.models.mat_checkpoint:build_official_discriminator",
        "--convert", "restoration.models.mat_checkpoint:convert_official_state_dict",
        "--res", "256", "--variant", "all", "--grad",
    )  # fmt: skip
