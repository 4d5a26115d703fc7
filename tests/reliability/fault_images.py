"""Small hostile and unusual image files for the fault tests (a few KB each, built in tmp dirs), and a fake model."""

from __future__ import annotations

import csv
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from restoration import predict
from restoration.inference import InferenceSettings


def png_claiming_size(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims `width` x `height` 8-bit gray pixels but holds almost no data: a decompression bomb
    as a reader sees it, without anyone allocating the pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def photo(size: int = 24, seed: int = 0) -> np.ndarray:
    """(size, size, 3) uint8 random colors: every pixel differs from its neighbours (no accidental flat areas)."""
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def masked_gray(rgb: np.ndarray, fill: int = 7) -> np.ndarray:
    """L(rgb) with a rectangle overwritten by one gray value, as the contest made its inputs."""
    gray = np.asarray(Image.fromarray(rgb).convert("L")).copy()
    h, w = gray.shape
    gray[h // 4 : h // 2, w // 4 : w // 2] = fill
    return gray


def save_gray16(path: Path, gray8: np.ndarray) -> Path:
    """A 16-bit gray PNG holding the same picture as `gray8` (v -> v * 257, the exact 8 -> 16 bit scaling)."""
    Image.fromarray(gray8.astype(np.uint16) * 257).save(path)
    return path


def write_contest_csv(root: Path, rows: list[tuple[str, str]], *, bom: bool = False) -> Path:
    path = root / "train.csv"
    with open(path, "w", newline="", encoding="utf-8-sig" if bom else "utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["input_image_path", "gt_image_path"])
        writer.writerows(rows)
    return path


def contest_pairs(root: Path, count: int, size: int = 24) -> Path:
    """`root/train_input`, `root/train_gt` and `root/train.csv` with `count` valid masked pairs."""
    (root / "train_input").mkdir(parents=True)
    (root / "train_gt").mkdir()
    rows = []
    for i in range(count):
        name = f"TRAIN_{i:05d}.png"
        rgb = photo(size, seed=i)
        Image.fromarray(rgb).save(root / "train_gt" / name)
        Image.fromarray(masked_gray(rgb, fill=i)).save(root / "train_input" / name)
        rows.append((f"./train_input/{name}", f"./train_gt/{name}"))
    write_contest_csv(root, rows)
    return root


class FakePipeline:
    """Stands in for a trained pipeline: the reading and reporting around it are under test, not the networks."""

    defaults = InferenceSettings()

    def describe(self, settings: InferenceSettings | None = None) -> str:
        return "fake"

    def restore(self, grays: list[np.ndarray], *, settings=None, seed: int = 0, keys: list[str] | None = None) -> list:
        class Restored:
            def __init__(self, gray: np.ndarray) -> None:
                self.rgb = np.repeat(gray[..., None], 3, axis=-1)
                self.mask_source = "exact"
                self.exact_refused = ""

        return [Restored(g) for g in grays]


@pytest.fixture
def fake_model(monkeypatch) -> list[str]:
    """`--model` arguments for `predict.main` that load the fake pipeline."""
    monkeypatch.setattr(predict, "open_models", lambda *args, **kwargs: FakePipeline())
    return ["--model", "fake"]
