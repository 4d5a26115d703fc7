"""The built-in dataset: shards of the color photos that ship with scikit-image, so a run needs no download.

Used by `data.root=builtin` in any training config (the demo, the tiny test config): seeded square crops of each
public-domain / CC0 photo (astronaut, coffee, chelsea, rocket, Hubble deep field, immunohistochemistry, retina),
one folder per photo, built into WebDataset shards with whole photos held out for validation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from restoration.data.shard_build import build_photo_shards

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")


def builtin_photos() -> dict[str, np.ndarray]:
    """The color photos bundled with scikit-image (no download): name -> (H, W, 3) uint8."""
    import skimage.data

    return {name: np.asarray(getattr(skimage.data, name)())[..., :3] for name in PHOTOS}


def write_crops(folder: Path, *, crops_per_photo: int, size: int, seed: int) -> Path:
    """Seeded square crops (random scale and position) of each photo into `folder/<photo>/`."""
    rng = np.random.default_rng(seed)
    for name, rgb in builtin_photos().items():
        target = folder / name
        target.mkdir(parents=True, exist_ok=True)
        img = Image.fromarray(rgb)
        short = min(img.size)
        for i in range(crops_per_photo):
            side = int(short * rng.uniform(0.35, 0.9))
            x0, y0 = int(rng.integers(0, img.size[0] - side + 1)), int(rng.integers(0, img.size[1] - side + 1))
            crop = img.crop((x0, y0, x0 + side, y0 + side)).resize((size, size), Image.Resampling.BICUBIC)
            crop.save(target / f"crop_{i:03d}.png")
    return folder


def builtin_shards_dir(output_dir: Path, size: int) -> Path:
    """Where the built-in shards of a run's `output_dir` live."""
    return Path(output_dir) / "demo-data" / f"builtin-{size}" / "shards"


def prepare_builtin_shards(output_dir: Path, size: int) -> Path:
    """Shards of the built-in photos at `size` px (built once under `output_dir`, reused afterwards)."""
    shards = builtin_shards_dir(output_dir, size)
    if (shards / "manifest.json").is_file():
        return shards
    crops = write_crops(shards.parent / "photos", crops_per_photo=32, size=size, seed=0)
    # held-out crops carry contest-style masks (one polygon with one gray fill), so that the demo's "scored like the
    # contest" is true: the training mixture's free-form strokes may run edge to edge, which no contest hole does and
    # the exact rule refuses as a background (restoration.data.exact_mask)
    manifest = build_photo_shards(
        crops, shards, size=size, val_fraction=0.3, samples_per_shard=32, seed=0, val_masks="contest"
    )
    totals = manifest["totals"]
    print(
        f"built-in data: {totals['train']} train / {totals['val']} held-out crops of {len(PHOTOS)} photos -> {shards}"
    )
    return shards
