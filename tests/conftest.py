"""Shared fixtures. Real photos come from ../shared/photos (a developer/CI reference, never shipped)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

SHARED = Path(os.environ.get("RESTORATION_SHARED", Path(__file__).resolve().parents[2] / "shared"))


@pytest.fixture(scope="session")
def shared_photos() -> list[Path]:
    photos = sorted((SHARED / "photos").glob("*.jpg"))
    if not photos:
        pytest.skip(f"no real photos under {SHARED / 'photos'}")
    return photos


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
