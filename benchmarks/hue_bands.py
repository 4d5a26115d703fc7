"""Where the colour goes: the share of pixels in each hue band (OpenCV's 8-bit hue, as C bins it) of the truth and of
prediction folders, over the same photos. Why: C is one number per photo; a readout by band says whether a
colorizer's hues are wrong in a systematic way (e.g. skies painted over grass) that a loss or data change could
address, or scattered.

    python -m benchmarks.hue_bands --gt runs/source-split/contest-512/gt \\
        --preds runs/source-split/pred/base1k-seed0 runs/source-split/pred/hue4-seed0
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from einops import rearrange

from restoration.image_io import read_rgb
from restoration.metrics import color_similarity, opencv_hue

# OpenCV hue is degrees / 2 in [0, 180); bin 0 also holds every achromatic pixel (R = G = B).
BANDS: tuple[tuple[str, int, int], ...] = (
    ("gray or red 0", 0, 1),
    ("red", 1, 8),
    ("orange", 8, 25),
    ("yellow", 25, 35),
    ("green", 35, 85),
    ("cyan", 85, 100),
    ("blue", 100, 130),
    ("purple", 130, 180),
)


def _rgb(path: Path) -> torch.Tensor:
    return rearrange(torch.from_numpy(read_rgb(path)), "h w c -> 1 c h w")


def band_shares(rgb_u8: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) uint8 RGB -> the share of its pixels in each of `BANDS`, summing to 1."""
    hue = opencv_hue(rgb_u8).flatten()
    counts = torch.bincount(hue, minlength=180).double()
    return np.array([counts[lo:hi].sum().item() for _, lo, hi in BANDS]) / hue.numel()


def folder_bands(gt: Path, folder: Path | None) -> tuple[np.ndarray, float | None]:
    """Mean band shares over the truth's photos (of `folder`'s copy of each, or the truth itself) and their mean C."""
    shares, cs = [], []
    for path in sorted(gt.glob("*.png")):
        truth = _rgb(path)
        if folder is None:
            shares.append(band_shares(truth))
            continue
        pred_path = folder / path.name
        if not pred_path.is_file():
            raise SystemExit(f"{pred_path}: missing (every photo of {gt} needs a prediction of the same name)")
        pred = _rgb(pred_path)
        shares.append(band_shares(pred))
        cs.append(color_similarity(pred, truth).item())
    if not shares:
        raise SystemExit(f"{gt}: no .png photos")
    return np.mean(shares, axis=0), (float(np.mean(cs)) if cs else None)


def table(gt: Path, preds: list[Path]) -> str:
    head = "| answer | " + " | ".join(name for name, _, _ in BANDS) + " | C |"
    lines = [head, "|" + "---|" * (len(BANDS) + 2)]
    for folder in [None, *preds]:
        shares, c = folder_bands(gt, folder)
        name = "the truth" if folder is None else folder.name
        c_text = "-" if c is None else f"{c:.4f}"
        lines.append(f"| {name} | " + " | ".join(f"{s:.3f}" for s in shares) + f" | {c_text} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gt", type=Path, required=True, help="folder of the true colour photos (PNG)")
    parser.add_argument("--preds", type=Path, nargs="+", required=True, help="prediction folders, same file names")
    args = parser.parse_args(argv)
    print(table(args.gt, args.preds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
