"""How the contest's C (hue-histogram correlation) behaves on a folder of true photos: the truth's own chroma scaled
down, a global colour cast, constant tints and plain gray. Why: C is 40 % of the score, and these bounds say what a
colorizer must get right (the hue of each pixel, with enough chroma to survive uint8 rounding) and what a sepia
guess is worth.

    python -m benchmarks.color_oracles runs/source-split/contest-512/gt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from torch import Tensor

from restoration.data.color import gray_chroma_to_rgb, rgb_to_ycbcr
from restoration.image_io import read_rgb
from restoration.metrics import color_similarity

FLOORS = (0.01, 0.02, 0.04)
TINTS = {"sepia": (-0.04, 0.04), "orange": (-0.08, 0.08), "blue": (0.08, -0.04), "green": (-0.05, -0.05)}


def to_u8(rgb01: Tensor) -> Tensor:
    return (rgb01.clamp(0, 1) * 255).round().to(torch.uint8)


def answers(gt_u8: Tensor) -> dict[str, Tensor]:
    """(1, 3, H, W) uint8 truth -> each oracle's uint8 answer."""
    ycc = rgb_to_ycbcr(gt_u8.float() / 255)
    y, chroma = ycc[:, :1], ycc[:, 1:] - 0.5
    out = {f"the truth's chroma x{s:g}": gray_chroma_to_rgb(y, chroma * s) for s in (1.0, 0.25, 0.1, 0.03)}
    magnitude = chroma.norm(dim=1, keepdim=True)
    direction = chroma / magnitude.clamp_min(1e-6)
    for floor in FLOORS:
        out[f"the truth's chroma x0.1, at least {floor:g} (its hue kept)"] = gray_chroma_to_rgb(
            y, direction * (magnitude * 0.1).clamp_min(floor)
        )
    out["the truth's mean chroma everywhere (a global cast)"] = gray_chroma_to_rgb(
        y, chroma.mean(dim=(2, 3), keepdim=True).expand_as(chroma)
    )
    for name, (cb, cr) in TINTS.items():
        tint = torch.tensor([cb, cr]).view(1, 2, 1, 1).expand_as(chroma)
        out[f"a constant {name} tint"] = gray_chroma_to_rgb(y, tint)
    out["gray (no colour)"] = y.expand(-1, 3, -1, -1)
    return {name: to_u8(a) for name, a in out.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("gt", type=Path, help="a folder of true colour photos (PNG)")
    ns = parser.parse_args(argv)
    scores: dict[str, list[float]] = {}
    paths = sorted(ns.gt.glob("*.png"))
    for path in paths:
        gt = rearrange(torch.from_numpy(read_rgb(path).copy()), "h w c -> 1 c h w")
        for name, answer in answers(gt).items():
            scores.setdefault(name, []).append(float(color_similarity(answer, gt)[0]))
    print(f"| answer ({len(paths)} photos) | C |\n|---|---|")
    for name, values in scores.items():
        print(f"| {name} | {np.mean(values):.4f} |")


if __name__ == "__main__":
    main()
