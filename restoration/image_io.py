"""Reading the user's images and listing them: one place that knows file layouts, modes and what can go wrong.

Inputs come as a contest `test.csv`/`train.csv` (`input_image_path` column, paths relative to the csv), a folder
(every image below it) or single files. Each gets an output *name*: the file name for csv rows and single files
(a contest submission is flat), the path relative to the folder for folders. Reading never raises for a bad file:
the caller gets the reason and moves on.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

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
        with open(csv_path, newline="") as fh:
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
    converted_from: str | None  # the original PIL mode when it was not gray


def read_gray(path: Path) -> GrayImage:
    """The image as 8-bit gray, converted like the contest did (PIL 'L') when it is color; raises ValueError with
    the reason when the file cannot be used."""
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode == "L":
                return GrayImage(np.asarray(img).copy(), None)
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(img).astype(np.float64)
                scale = 255.0 / 65535.0 if arr.max() > 255 else 1.0
                return GrayImage(np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8), mode)
            rgb = np.asarray(img.convert("RGB"))
            gray = np.asarray(img.convert("RGB").convert("L")).copy()
    except FileNotFoundError:
        raise ValueError("file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"not a readable image ({type(err).__name__}: {err})") from None
    if gray.size == 0:
        raise ValueError("empty image")
    same = bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())
    return GrayImage(gray, None if same else mode)  # gray stored as RGB is not a conversion


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB (the metric's input); raises ValueError with the reason."""
    try:
        with Image.open(path) as img:
            img.load()
            return np.asarray(img.convert("RGB")).copy()
    except FileNotFoundError:
        raise ValueError("file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"not a readable image ({type(err).__name__}: {err})") from None


def write_png_atomic(array: np.ndarray, path: Path) -> None:
    """Write to a temporary name and rename, so an interrupted run never leaves a truncated PNG behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(array).save(tmp, format="PNG")
    tmp.replace(path)
