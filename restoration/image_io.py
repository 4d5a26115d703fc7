"""Reading the user's images and listing them: one place that knows file layouts and what can go wrong.

Inputs come as a contest `test.csv`/`train.csv` (`input_image_path` column, paths relative to the csv), a folder
(every image below it) or single files. Each gets an output *name*, unique among the inputs: the file name for csv
rows and single files (a contest submission is flat), the path relative to the folder for folders. Inputs whose
names would collide (`a/img.png` and `b/img.png` in one csv, two folders holding `img.png`, `img.png` and
`img.jpg`) keep their relative path instead (`a/img.png`, `b/img.png`), so no output overwrites another; names that
still collide are refused before anything is written. Pixels are decoded by the one rule in `image_decoding`
(16-bit, CMYK, palette, alpha, EXIF, pixel limit, regular files only). Reading raises ValueError with the reason
for a bad file: the caller names the file in its report and moves on.

Every image-named entry of a folder is listed, whatever it is: a FIFO, a device or a dangling link is reported by
what it is when read (never opened for reading) instead of vanishing from the listing. File names are kept as the
file system gives them: a name that is not UTF-8 (Python's surrogate escapes) is written back as the same bytes in
csv reports (`write_report_csv`) and shown as `\\xNN` escapes on the terminal (`escape_undecodable_output`).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import dataclasses
import errno
import os
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

import numpy as np
from PIL import Image

from restoration.image_decoding import as_gray, as_rgb, decode_image, file_problem

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


class InputError(ValueError):
    """An input specification that cannot be listed at all (missing csv column, no images in a folder, ...)."""


class OutputError(ValueError):
    """An output path that cannot be written (a file where a folder is needed, a read-only folder, ...); the message
    names the path and says what to do."""


@dataclass(frozen=True)
class ImageItem:
    path: Path
    name: str  # relative output name, always ending in .png; unique among the items `list_inputs` returns
    rel: str = ""  # its relative path (below the csv's folder, the listed folder's parent, as given), for collisions


def _png_name(rel: str) -> str:
    return str(Path(rel).with_suffix(".png"))


def _relative_path(rel: str | PurePath) -> str:
    """`rel` as a path that stays below the output folder: no root, no `.`, and `..` becomes `__`."""
    path = PurePath(rel)
    parts = [("__" if part == ".." else part) for part in path.parts[1 if path.anchor else 0 :] if part != "."]
    return PurePath(*parts).as_posix() if parts else (path.name or "image")


def _with_suffix_kept(rel: str) -> str:
    """`img.bmp` -> `img.bmp.png`: apart from `img.png` (which stays)."""
    return rel if rel.lower().endswith(".png") else f"{rel}.png"


# the output names an item may take, tried in this order while its name collides with another's
_NAMINGS = (
    lambda item: item.name,  # flat (csv rows, single files) or relative to the listed folder
    lambda item: _png_name(item.rel) if item.rel else item.name,  # a/img.png, b/img.png
    lambda item: _with_suffix_kept(item.rel) if item.rel else item.name,  # a/img.png, a/img.jpg.png
)


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
    items = []
    for row in rows:
        rel = (row["input_image_path"] or "").strip()
        items.append(ImageItem(root / rel, _png_name(Path(rel).name), _relative_path(rel)))
    return items


def image_entries(folder: Path) -> list[Path]:
    """Every entry below `folder` with an image suffix that is not a folder, sorted: regular files and also FIFOs,
    devices, sockets and dangling links, which the reader then refuses by name (`image_decoding.file_problem`)
    instead of them vanishing without a word."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir())


def list_folder(folder: Path) -> list[ImageItem]:
    files = image_entries(folder)
    if not files:
        raise InputError(f"{folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder")
    top = folder.name or folder.resolve().name
    return [ImageItem(p, _png_name(rel := p.relative_to(folder).as_posix()), _relative_path(f"{top}/{rel}"))
            for p in files]  # fmt: skip


def unique_names(items: Sequence[ImageItem]) -> list[ImageItem]:
    """The items with output names that cannot overwrite each other (compared case-insensitively, as on macOS and
    Windows): those whose names collide take their relative path (`a/img.png`, `b/img.png`), then, if still
    colliding, that path with its suffix kept (`a/img.png`, `a/img.jpg.png`); raises InputError naming the inputs
    when even those collide. Items without a collision keep their name."""
    level = [0] * len(items)
    for _ in range(len(_NAMINGS) - 1):
        groups: dict[str, list[int]] = defaultdict(list)
        for i, item in enumerate(items):
            groups[_NAMINGS[level[i]](item).casefold()].append(i)
        clashing = [i for group in groups.values() if len(group) > 1 for i in group]
        if not clashing:
            break
        for i in clashing:
            level[i] = min(level[i] + 1, len(_NAMINGS) - 1)
    named = [dataclasses.replace(item, name=_NAMINGS[level[i]](item)) for i, item in enumerate(items)]
    final: dict[str, list[ImageItem]] = defaultdict(list)
    for item in named:
        final[item.name.casefold()].append(item)
    clashes = [group for group in final.values() if len(group) > 1]
    if clashes:
        listing = "; ".join(f"{g[0].name} ({' and '.join(str(it.path) for it in g[:3])})" for g in clashes[:5])
        raise InputError(
            f"these inputs would be written to the same output file: {listing}; rename one of them or predict them in "
            "separate runs (nothing was written)"
        )
    return named


def list_inputs(specs: list[str | Path]) -> list[ImageItem]:
    """Every input image of the given csv files, folders and files, in order; duplicates of a path dropped."""
    items: list[ImageItem] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            items.extend(list_folder(path))
        elif path.suffix.lower() == ".csv":
            problem = file_problem(path)
            if problem:
                raise InputError(f"{path}: cannot read the csv: {problem}")
            items.extend(list_csv(path))
        else:  # a missing file, a FIFO, ... is reported when read
            items.append(ImageItem(path, _png_name(path.name), _relative_path(path)))
    seen: set[Path] = set()
    unique = []
    for item in items:
        if item.path.resolve() not in seen:
            seen.add(item.path.resolve())
            unique.append(item)
    return unique_names(unique)


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


# -- writing: reports with the file system's names, output folders that can be written -----------------------------


def _escape_undecodable(err: UnicodeError) -> tuple[str, int]:
    """Codec error handler: a file name's undecodable byte (surrogate escape U+DC80..U+DCFF) shown as `\\xNN`, any
    other character the stream cannot encode as a backslash escape."""
    if not isinstance(err, UnicodeEncodeError):
        raise err
    bad = err.object[err.start : err.end]
    return "".join(f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else ascii(c)[1:-1] for c in bad), err.end


codecs.register_error("restoration-escape", _escape_undecodable)


def escape_undecodable_output() -> None:
    """Let stdout and stderr print any file name: bytes that are not UTF-8 are shown as `\\xNN` instead of raising
    UnicodeEncodeError in the middle of a report (the command lines call this first)."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):  # a closed or unusual stream: leave it as it is
                reconfigure(errors="restoration-escape")


def write_report_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
    """A csv report (`skipped.csv`, `rejected.csv`, ...) written under a temporary name and renamed; names are written
    as the file system gives them (UTF-8, a non-UTF-8 name as its own bytes), so each row names the very file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8", errors="surrogateescape") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    tmp.replace(path)
    return path


def _cannot_write(path: Path, what: str, err: OSError) -> OutputError:
    reason = err.strerror or str(err)
    if isinstance(err, (FileExistsError, NotADirectoryError)) or err.errno in (errno.EEXIST, errno.ENOTDIR):
        return OutputError(f"{what} {path}: a file is in the way (this path or a folder above it is a file, not a "
                           "folder); give another path, or move the file")  # fmt: skip
    return OutputError(f"{what} {path}: cannot write here ({reason}); give a writable folder")


def writable_folder(path: Path, what: str, *, shown: Path | None = None) -> Path:
    """Create `path` if needed and check that files can be written into it (a real write, so a read-only mount or
    folder is found before the work starts); raises OutputError naming `what` (the option) and the path (`shown`,
    when the option named a file in this folder)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        probe.unlink()
    except OSError as err:
        raise _cannot_write(shown or path, what, err) from None
    return path


def writable_file(path: Path, what: str) -> Path:
    """Check that the file `path` can be (re)written: it is not a folder and its folder is writable (created if
    needed); raises OutputError naming `what` and the path."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} {path}: is a folder; give a file path")
    writable_folder(path.parent, what, shown=path)
    return path
