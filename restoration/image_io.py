"""Reading the user's images and listing them: one place that knows file layouts and what can go wrong.

Inputs come as a contest `test.csv`/`train.csv` (`input_image_path` column, paths relative to the csv), a folder
(every image below it) or single files. Each gets an output *name*: the file name for csv rows and single files
(a contest submission is flat), the path relative to the folder for folders. Pixels are decoded by the one rule in
`image_decoding` (16-bit, CMYK, palette, alpha, EXIF, pixel limit). Reading raises ValueError with the reason for
a bad file: the caller names the file in its report and moves on.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from restoration.image_decoding import as_gray, as_rgb, decode_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


class InputError(ValueError):
    """An input specification that cannot be listed at all (missing csv column, no images in a folder, ...)."""


@dataclass(frozen=True)
class ImageItem:
    path: Path
    name: str  # relative output name, always ending in .png


def _png_name(rel: str) -> str:
    return str(Path(rel).with_suffix(".png"))


def list_csv(csv_path: Path) -> list[ImageItem]:
    """Rows of a contest csv; paths are relative to the csv's folder (the contest layout)."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:  # a BOM is not part of a column name
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"{csv_path}: cannot read the csv ({err})") from err
    if not rows or "input_image_path" not in rows[0]:
        found = sorted(rows[0]) if rows else "no rows"
        raise InputError(f"{csv_path}: expected a column 'input_image_path' (found {found})")
    root = csv_path.parent
    return [ImageItem(root / r["input_image_path"].strip(), _png_name(Path(r["input_image_path"]).name)) for r in rows]


def list_folder(folder: Path) -> list[ImageItem]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder")
    return [ImageItem(p, _png_name(p.relative_to(folder).as_posix())) for p in files]


def list_inputs(specs: list[str | Path]) -> list[ImageItem]:
    """Every input image of the given csv files, folders and files, in order; duplicates of a path dropped."""
    items: list[ImageItem] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            items.extend(list_folder(path))
        elif path.suffix.lower() == ".csv":
            if not path.is_file():
                raise InputError(f"{path}: no such csv file")
            items.extend(list_csv(path))
        else:
            items.append(ImageItem(path, _png_name(path.name)))  # a missing file is reported when read
    seen: set[Path] = set()
    unique = []
    for item in items:
        if item.path.resolve() not in seen:
            seen.add(item.path.resolve())
            unique.append(item)
    return unique


@dataclass
class GrayImage:
    gray: np.ndarray  # (H, W) uint8
    converted_from: str | None  # the file's PIL mode when it was color converted to gray (PIL 'L')


def read_gray(source: Path | bytes) -> GrayImage:
    """The image as 8-bit gray, decoded by the shared rule (`image_decoding`) and converted like the contest did
    (PIL 'L') when it is color; raises ValueError with the reason when the file cannot be used."""
    decoded = decode_image(source)
    gray, converted = as_gray(decoded)
    return GrayImage(gray, decoded.mode if converted else None)


def read_rgb(source: Path | bytes) -> np.ndarray:
    """(H, W, 3) uint8 RGB (the metric's input), decoded by the shared rule; raises ValueError with the reason."""
    return as_rgb(decode_image(source))


def write_png_atomic(array: np.ndarray, path: Path) -> None:
    """Write to a temporary name and rename, so an interrupted run never leaves a truncated PNG behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(array).save(tmp, format="PNG")
    tmp.replace(path)
