"""Inference speed of the full pipeline (exact mask detection -> MAT -> composite -> colorizer) at contest size.

    python -m benchmarks.predict_speed [--preset official512] [--encoder resnet34] [--images 8] [--batch 1 4]

Builds the networks with random weights (speed does not depend on the values), writes them as an export
directory, loads it the way `restoration-predict` does, and restores contest-style 512 px inputs. Prints images
per second per batch size and the peak memory (RSS on CPU, allocated on GPU).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from restoration.data.masks import MaskConfig, sample_known_mask
from restoration.models.colorizer import ColorizerConfig, build_colorizer
from restoration.models.mat import MATConfig, build_generator
from restoration.pipeline import load_pipeline
from restoration.weights import export_weights


def inputs(count: int, size: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(count):
        gray = ((np.sin(7 * xx + rng.uniform(0, 6)) * np.cos(5 * yy) * 0.5 + 0.5) * 255).astype(np.uint8)
        known, fill = sample_known_mask(rng, size, size, MaskConfig(test_style=1.0, train_style=0.0, free_form=0.0))
        out.append(np.where(known == 1, gray, fill).astype(np.uint8))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="official512")
    parser.add_argument("--encoder", default="resnet34")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ns = parser.parse_args(argv)

    mat_cfg, color_cfg = MATConfig(preset=ns.preset), ColorizerConfig(encoder=ns.encoder)
    size = mat_cfg.arch().img_resolution
    with tempfile.TemporaryDirectory() as tmp:
        meta = {"stage": "benchmark", "image_size": size, "mat": {"preset": ns.preset},
                "colorizer": {"encoder": ns.encoder}}  # fmt: skip
        export_weights({"mat_G": build_generator(mat_cfg), "color_G": build_colorizer(color_cfg)}, Path(tmp), meta)
        pipeline = load_pipeline([tmp], ns.device)
    print(f"{pipeline.describe()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    images = inputs(ns.images, size)
    pipeline.restore(images[:1])  # warm-up (allocator, kernels)
    for batch in ns.batch:
        if ns.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for i in range(0, len(images), batch):
            pipeline.restore(images[i : i + batch], seed=i)
        if ns.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        if ns.device.startswith("cuda"):
            memory = f"peak allocated {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
        else:
            memory = f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB"
        print(f"batch {batch}: {len(images) / seconds:.2f} img/s ({seconds / len(images):.2f} s/img), {memory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
