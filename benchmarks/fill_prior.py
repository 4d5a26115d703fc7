"""The torch harmonic fill (`restoration.models.fill_prior`, MAT's prior with `mat.prior: fill`) against the
pipeline's biharmonic fill (`restoration.anchors.classical_fill`) on M, per photo, with contest-style masks.

    python -m benchmarks.fill_prior --photos ../shared/photos --count 24 --size 512 128

Each photo is center-cropped to a square, resized to each `--size`, turned gray and given one contest-style mask
(seeded by its index); prints each fill's mean M and time, and the paired difference to the biharmonic fill with a
95 % bootstrap interval over photos.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.study import bootstrap_diff, ci_text
from restoration.anchors import classical_fill, gray_rgb
from restoration.data.masks import MaskConfig, sample_known_mask
from restoration.metrics import score_image
from restoration.models.fill_prior import harmonic_fill

ROOT = Path(__file__).resolve().parents[1]
CONTEST_MASKS = MaskConfig(test_style=1.0, train_style=0.0, free_form=0.0)


def square_gray(path: Path, size: int) -> np.ndarray:
    """(size, size) uint8: the photo's central square, resized, in PIL's 'L' gray."""
    img = Image.open(path).convert("L")
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    return np.asarray(img.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC))


def torch_fill(gray: np.ndarray, known: np.ndarray, steps: int) -> np.ndarray:
    """The torch harmonic fill on a uint8 gray, rounded back to uint8."""
    img = torch.from_numpy(gray.copy()).float()[None, None] / 127.5 - 1.0  # (1, 1, H, W) in [-1, 1]
    filled = harmonic_fill(img, torch.from_numpy(known).float()[None, None], steps=steps)
    return ((filled[0, 0] + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fill_prior", description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "photos")
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--size", type=int, nargs="+", default=[512, 128])
    parser.add_argument("--steps", type=int, nargs="+", default=[8, 64], help="Jacobi steps per level to compare")
    ns = parser.parse_args(argv)
    photos = sorted(ns.photos.glob("*.jpg"))[: ns.count]
    for size in ns.size:
        methods = {"biharmonic": lambda g, k: classical_fill(g, k, "biharmonic")}
        methods |= {f"harmonic-{s}": (lambda g, k, s=s: torch_fill(g, k, s)) for s in ns.steps}
        M = {name: {} for name in methods}
        seconds = dict.fromkeys(methods, 0.0)
        for i, path in enumerate(photos):
            gray = square_gray(path, size)
            known, _ = sample_known_mask(np.random.default_rng(i), size, size, CONTEST_MASKS)
            for name, fill in methods.items():
                start = time.perf_counter()
                filled = fill(gray, known)
                seconds[name] += time.perf_counter() - start
                M[name][path.name] = score_image(gray_rgb(filled), gray_rgb(gray), known)["M"]
        print(f"{size} px, {len(photos)} photos")
        for name in methods:
            line = f"  {name:<14} M {np.mean(list(M[name].values())):.4f}  {1000 * seconds[name] / len(photos):7.1f} ms"
            if name != "biharmonic":
                line += f"  vs biharmonic {ci_text(bootstrap_diff([M[name]], [M['biharmonic']]))}"
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
