"""Shared fixtures. Real photos come from ../shared/photos (a developer/CI reference, never shipped)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

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


# -- a tiny trained-looking pipeline and a contest-layout folder, for predict / evaluate / pyfunc tests ----------

TINY_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"


def write_tiny_export(
    out_dir: Path, networks: tuple[str, ...] = ("mat_G", "color_G"), seed: int = 0, overrides: tuple[str, ...] = ()
) -> Path:
    """An export directory (as `runs/<name>/final/`) of the tiny config's networks (with the dotted config
    `overrides`) with random weights."""
    from restoration.config import load_config
    from restoration.models.colorizer import build_colorizer
    from restoration.models.detector import build_detector
    from restoration.models.mat import build_generator
    from restoration.recipe import TrainConfig, pipeline_meta
    from restoration.weights import export_weights

    cfg = load_config(TrainConfig, TINY_CONFIG, overrides)
    torch.manual_seed(seed)
    builders = {
        "mat_G": lambda: build_generator(cfg.mat),
        "color_G": lambda: build_colorizer(cfg.colorizer),
        "detector": lambda: build_detector(cfg.detector),
    }
    return export_weights({name: builders[name]() for name in networks}, out_dir, pipeline_meta(cfg))


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory) -> Path:
    return write_tiny_export(tmp_path_factory.mktemp("tiny-export") / "final")


def make_contest_folder(root: Path, count: int = 4, size: int = 64, seed: int = 0) -> Path:
    """`root/test_input/TEST_00i.png` (masked gray, one rectangle filled with one gray value), `root/gt/` (color
    originals) and `root/test.csv`, as in the contest."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "test_input").mkdir(parents=True, exist_ok=True)
    (root / "gt").mkdir(exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size] / size
    rows = ["input_image_path"]
    for i in range(count):
        phase = rng.uniform(0, 6, size=3)
        rgb = np.stack([np.sin(5 * xx + 3 * yy * (c + 1) + phase[c]) for c in range(3)], -1)
        rgb = ((rgb * 0.5 + 0.5) * 255).astype(np.uint8)
        gt = Image.fromarray(rgb)
        gray = np.asarray(gt.convert("L")).copy()
        y0, x0 = rng.integers(4, size // 2, size=2)
        gray[y0 : y0 + size // 3, x0 : x0 + size // 3] = int(rng.integers(0, 30))
        name = f"TEST_{i:03d}.png"
        Image.fromarray(gray).save(root / "test_input" / name)
        gt.save(root / "gt" / name)
        rows.append(f"./test_input/{name}")
    (root / "test.csv").write_text("\n".join(rows) + "\n")
    return root


# -- small real shards for training tests ----------------------------------------------------------------------


def synthetic_photos(folder: Path, count: int, size: int = 96, seed: int = 0) -> Path:
    """Smooth color images with shapes: enough structure and hue variety for tiny training runs."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(count):
        base = np.stack([np.sin(6 * xx * rng.uniform(0.5, 2) + rng.uniform(0, 6)) for _ in range(3)], -1)
        img = ((base * 0.5 + 0.5) * rng.uniform(60, 255, size=3)).astype(np.uint8)
        x0, y0 = rng.integers(0, size // 2, size=2)
        img[y0 : y0 + size // 3, x0 : x0 + size // 3] = rng.integers(0, 256, size=3)
        _ = yy
        Image.fromarray(img).save(folder / f"photo_{i:03d}.png")
    return folder


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory) -> Path:
    from restoration.data.shard_build import build_photo_shards

    base = tmp_path_factory.mktemp("tiny-data")
    photos = synthetic_photos(base / "photos", 24)
    out = base / "shards"
    build_photo_shards(photos, out, size=64, val_fraction=0.25, samples_per_shard=6, workers=1, seed=0)
    return out


# -- MAT's always-on dropout, fixed ------------------------------------------------------------------------------


def fixed_dropout(monkeypatch) -> None:
    """MAT's always-on Bernoulli maps drawn once on the CPU from fixed seeds, one per shape, so that two code paths
    (a batch and its samples alone, two devices) see the same maps."""
    from restoration.models import mat as mat_module

    maps: dict[tuple, torch.Tensor] = {}

    def keep(shape, like, generator):
        if shape not in maps:
            maps[shape] = torch.bernoulli(torch.full(shape, 0.5), generator=torch.Generator().manual_seed(len(maps)))
        return maps[shape].to(like.device)

    monkeypatch.setattr(mat_module, "bernoulli_keep", keep)


def free_port() -> int:
    """A TCP port free on the loopback right now (for a launcher's rendezvous or a model server)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
