"""Data throughput: (a) raw PNG decode in a tight loop (the limit), (b) our shard loader, (c) a PNG-folder
Dataset + DataLoader as the original notebook did, with the same number of workers; plus masks/s per core.

    python benchmarks/data_throughput.py --photos ../shared/photos --count 96 --size 512 --workers 1 2

Photos are resized to `--size` PNGs in a temp dir (never committed), and shards are built from them.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from data_prep.build_shards import build_photo_shards
from restoration.data.masks import MaskConfig, sample_known_mask
from restoration.data.shards import DataConfig, make_train_loader


class PngFolder(torch.utils.data.Dataset):
    def __init__(self, files: list[Path]) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        return torch.from_numpy(np.asarray(Image.open(self.files[i]).convert("RGB"))).permute(2, 0, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=Path, required=True)
    ap.add_argument("--count", type=int, default=96)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, default=8)
    ns = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "png"
        folder.mkdir()
        sources = sorted(ns.photos.glob("*.jpg"))[: ns.count]
        for i, path in enumerate(sources):
            img = Image.open(path).convert("RGB").resize((ns.size, ns.size))
            img.save(folder / f"img_{i:04d}.png", compress_level=1)
        files = sorted(folder.glob("*.png"))
        blobs = [f.read_bytes() for f in files]
        t0 = time.perf_counter()
        for _ in range(2):
            for b in blobs:
                np.asarray(Image.open(io.BytesIO(b)).convert("RGB"))
        raw = 2 * len(blobs) / (time.perf_counter() - t0)
        print(f"(a) raw PNG decode, 1 core: {raw:.1f} img/s at {ns.size} px")
        shards = Path(tmp) / "shards"
        build_photo_shards(folder, shards, size=ns.size, val_fraction=0.0, samples_per_shard=16)
        for workers in ns.workers:
            cfg = DataConfig(root=shards, image_size=ns.size, num_workers=workers, shuffle_buffer=32,
                             batches_per_epoch=2 * len(files) // ns.batch)  # fmt: skip
            loader = make_train_loader(cfg, batch_size=ns.batch, rank=0, world_size=1, seed=0)
            it = iter(loader)
            next(it)  # start-up
            t0, n = time.perf_counter(), 0
            for batch in it:
                n += batch["gt"].shape[0]
            shard_rate = n / (time.perf_counter() - t0)
            dl = torch.utils.data.DataLoader(
                PngFolder(files * 2), batch_size=ns.batch, num_workers=workers, shuffle=True
            )
            it = iter(dl)
            next(it)
            t0, n = time.perf_counter(), 0
            for batch in it:
                n += batch.shape[0]
            folder_rate = n / (time.perf_counter() - t0)
            share = shard_rate / workers / raw
            print(f"workers={workers}: (b) shard loader {shard_rate:.1f} img/s = {share:.0%} of (a) per worker")
            print(f"workers={workers}: (c) PNG folder DataLoader {folder_rate:.1f} img/s")
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(200):
        sample_known_mask(rng, ns.size, ns.size, MaskConfig())
    print(f"mask generation: {200 / (time.perf_counter() - t0):.0f} masks/s on one core at {ns.size} px")


if __name__ == "__main__":
    main()
