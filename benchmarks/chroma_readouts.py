"""Readouts of a colorizer's chroma tried after the fact on `restoration-predict` outputs: each pixel's chroma
zeroed below a threshold, its magnitude bent by a power, its hue jittered, and the chroma of several runs averaged
(a seed ensemble), every answer scored by the contest metric against the truth. Why: C compares 8-bit hue
histograms, so a readout could in principle move C without training; these say whether the colorizer's errors are
in the strength of its colour (a readout fixes that) or in its hue (only training does).

    python -m benchmarks.chroma_readouts --contest runs/source-split/contest-512 --out runs/readouts \\
        --preds runs/source-split/pred/base1k-seed0 runs/source-split/pred/base1k-seed1
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from PIL import Image
from torch import Tensor

from restoration.data.color import gray_chroma_to_rgb, rgb_to_ycbcr
from restoration.image_io import read_rgb
from restoration.scoring import score_contest_folder

KEYS = ("S", "M", "C", "score")
Readout = Callable[[Tensor, torch.Generator], Tensor]  # (1, 2, H, W) chroma -> chroma


def zero_below(t: float) -> Readout:
    return lambda ch, _: ch * (ch.norm(dim=1, keepdim=True) >= t)


def power(g: float) -> Readout:
    """Each magnitude m -> mean * (m / mean) ** g: above 1 the strong get stronger, the faint fainter."""

    def bend(ch: Tensor, _: torch.Generator) -> Tensor:
        m = ch.norm(dim=1, keepdim=True).clamp_min(1e-6)
        return ch / m * m.mean() * (m / m.mean()) ** g

    return bend


def hue_jitter(degrees: float) -> Readout:
    """Each pixel's hue turned by a seeded uniform angle in +-`degrees`: a narrow hue histogram made wider."""

    def turn(ch: Tensor, gen: torch.Generator) -> Tensor:
        a = (torch.rand(ch[:, :1].shape, generator=gen) * 2 - 1) * math.radians(degrees)
        cb, cr = ch[:, :1], ch[:, 1:]
        return torch.cat([a.cos() * cb - a.sin() * cr, a.sin() * cb + a.cos() * cr], dim=1)

    return turn


READOUTS: dict[str, Readout] = {
    **{f"chroma zeroed below {t:g}": zero_below(t) for t in (0.005, 0.01, 0.02)},
    **{f"chroma magnitude to the power {g:g}": power(g) for g in (0.5, 2.0)},
    **{f"hue jittered +-{d:g} degrees": hue_jitter(d) for d in (10, 20)},
}


def luma_chroma(path: Path) -> tuple[Tensor, Tensor]:
    rgb = rearrange(torch.from_numpy(read_rgb(path).copy()), "h w c -> 1 c h w").float() / 255
    ycc = rgb_to_ycbcr(rgb)
    return ycc[:, :1], ycc[:, 1:] - 0.5


def write(y: Tensor, chroma: Tensor, path: Path) -> None:
    rgb = (gray_chroma_to_rgb(y, chroma).clamp(0, 1) * 255).round().to(torch.uint8)
    Image.fromarray(rearrange(rgb, "1 c h w -> h w c").numpy()).save(path)


def answers(preds: list[Path], out: Path) -> dict[str, Path]:
    """Write each readout of the first prediction folder, and the average chroma of all of them, to `out`."""
    folders = {"as predicted (first folder)": preds[0]}
    for name in READOUTS:
        folders[name] = out / name.replace(" ", "_")
    if len(preds) > 1:
        folders[f"chroma averaged over {len(preds)} folders"] = out / "ensemble"
    for folder in list(folders.values())[1:]:
        folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    for path in sorted(preds[0].glob("*.png")):
        y, chroma = luma_chroma(path)
        for name, readout in READOUTS.items():
            write(y, readout(chroma, gen), folders[name] / path.name)
        if len(preds) > 1:
            mean = torch.stack([luma_chroma(p / path.name)[1] for p in preds]).mean(dim=0)
            write(y, mean, out / "ensemble" / path.name)
    return folders


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contest", type=Path, required=True, help="the scored set (gt/, test.csv)")
    parser.add_argument("--preds", type=Path, nargs="+", required=True, help="restoration-predict output folders")
    parser.add_argument("--out", type=Path, required=True)
    ns = parser.parse_args(argv)
    print("| answer | " + " | ".join(KEYS) + " |\n|---|" + "---|" * len(KEYS))
    for name, folder in answers(ns.preds, ns.out).items():
        mean = score_contest_folder(folder, ns.contest)["mean"]
        print(f"| {name} | " + " | ".join(f"{np.float64(mean[k]):.4f}" for k in KEYS) + " |", flush=True)


if __name__ == "__main__":
    main()
