"""What goes into the shards: the samples listed from the contest layout or a folder of photos, their split and
shard plan, and each sample decoded, checked and encoded (`build_sample`). `restoration.data.shard_build` writes
them into shards; `python -m data_prep.build_shards` is the command line.

Nothing bad lands in a shard: every sample is decoded (by the same rule as prediction and evaluation,
`restoration.image_decoding`) and checked before it is written; a contest pair must look like a masked copy (few
changed pixels, showing one fill value). A bad one raises `SampleError` naming the file at fault.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from restoration.data.exact_mask import known_from_pair
from restoration.data.masks import MaskConfig, sample_known_mask
from restoration.image_decoding import file_problem
from restoration.image_io import GrayImage, read_gray, read_rgb

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
# masks baked into val samples of photo folders: the training mixture, or only the contest test style
VAL_MASKS = {"mixture": MaskConfig(), "contest": MaskConfig(test_style=1.0, train_style=0.0, free_form=0.0)}
_KEY_OK = re.compile(r"^[A-Za-z0-9_\-]+$")
# a contest input is L(gt) with one region overwritten by one gray: the contest's largest masks cover ~36 % of an
# image, and every changed pixel shows the fill value. Pairs far from that are a wrong file or a lossy re-encode.
MAX_LOST_FRACTION = 0.9
MIN_FILL_SHARE = 0.5


class BuildError(RuntimeError):
    """A bad input under --strict, or a problem that makes the whole build impossible."""


class SampleError(ValueError):
    """A bad sample; `path` is the file at fault (as the csv or folder names it), so every report names that file."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason)
        self.path = path


@dataclass
class Source:
    """One sample to build: its key and the files it comes from (paths relative to the dataset root)."""

    key: str
    gt: str | None
    input: str | None = None
    group: str | None = None


@dataclass
class ShardPlan:
    name: str
    split: str
    sources: list[Source] = field(default_factory=list)


# -- listing -------------------------------------------------------------------------------------------------


def _inside(root: Path, rel: str) -> Path | None:
    """The file for a csv path, or None if it escapes the root (absolute, `..`)."""
    rel = rel.strip()
    if rel.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", rel):
        return None
    path = (root / rel).resolve()
    try:
        path.relative_to(root.resolve())
    except ValueError:
        return None
    return path


def _key_problem(key: str) -> str | None:
    if "." in key:
        return f"key {key!r} contains a dot (webdataset treats everything after the first dot as the field name)"
    if not _KEY_OK.match(key):
        return f"key {key!r} has characters other than letters, digits, '_' and '-'"
    return None


def list_contest(root: Path, csv_name: str) -> tuple[list[Source], list[tuple[str, str]]]:
    """Sources and listing-level rejects (path, reason) from `train.csv` (input, gt) or `test.csv` (input only)."""
    csv_path = root / csv_name
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:  # a BOM is not part of a column name
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise BuildError(f"{csv_path}: cannot read the csv ({err})") from err
    if not rows:
        raise BuildError(f"{csv_path}: the csv has no rows")
    columns = set(rows[0])
    if "input_image_path" not in columns:
        raise BuildError(f"{csv_path}: missing column 'input_image_path' (found {sorted(columns)})")
    has_gt = "gt_image_path" in columns
    group_col = next((c for c in ("group", "group_id", "scene") if c in columns), None)
    sources, rejects, seen = [], [], set()
    for i, row in enumerate(rows, start=2):
        where = f"{csv_path}:{i}"
        inp = row.get("input_image_path") or ""
        gt = row.get("gt_image_path") if has_gt else None
        paths = [p for p in (inp, gt) if p is not None]
        bad = [p for p in paths if _inside(root, p) is None]
        if not inp or (has_gt and not gt):
            rejects.append((where, "empty path in the csv"))
            continue
        if bad:
            rejects.append((f"{where} {bad[0]}", "path escapes the dataset root"))
            continue
        unusable = [(p, problem) for p in paths if (problem := file_problem(root / p.strip()))]
        if unusable:  # file not found, a dangling link, a FIFO (never opened: it would block), ...
            rejects.append(unusable[0])
            continue
        key = Path(inp).stem if Path(inp).suffix.lower() in IMAGE_SUFFIXES else Path(inp).name
        problem = _key_problem(key)
        if problem:
            rejects.append((inp, problem))
            continue
        if key in seen:
            rejects.append((inp, f"duplicate key {key!r}"))
            continue
        seen.add(key)
        sources.append(Source(key=key, gt=gt, input=inp, group=row.get(group_col) if group_col else None))
    return sources, rejects


def sample_key(rel: str) -> str:
    """A photo's key: its path relative to the dataset root, without the suffix, made safe for a tar member."""
    return re.sub(r"[^A-Za-z0-9_\-]", "_", rel.rsplit(".", 1)[0])


def list_photo_roots(roots: Sequence[Path]) -> tuple[Path, list[Source], list[tuple[str, str]]]:
    """Several photo folders built as one dataset: returns their common parent (the root the samples are read
    from), every photo with its path and key relative to that parent, and the rejects. A photo's group stays the
    subfolder within its own folder, so the photos of a flat folder are still held out one by one (a group per
    folder would put all of one folder or none of it in the val split) and `--val-groups` names subfolders as it
    does for one folder. One folder: `list_photos` unchanged."""
    roots = [Path(r) for r in roots]
    if len(roots) == 1:
        return roots[0], *list_photos(roots[0])
    resolved = [r.resolve() for r in roots]
    for r, a in zip(roots, resolved, strict=True):
        if not a.is_dir():
            raise BuildError(f"{r}: not a directory")
        inside = [b for b in resolved if b != a and a.is_relative_to(b)]
        if inside or resolved.count(a) > 1:
            raise BuildError(f"{r}: given twice or inside {inside[0] if inside else r}: give each photo folder once")
    base = Path(os.path.commonpath(resolved))
    sources, rejects, seen = [], [], set()
    for r, a in zip(roots, resolved, strict=True):
        prefix = a.relative_to(base).as_posix()
        found, rejected = list_photos(r)
        rejects += [(f"{prefix}/{rel}", reason) for rel, reason in rejected]
        for src in found:
            rel = f"{prefix}/{src.gt}"
            key = sample_key(rel)
            if key in seen:
                rejects.append((rel, f"duplicate key {key!r} after sanitising the name"))
                continue
            seen.add(key)
            sources.append(Source(key=key, gt=rel, group=src.group))
    return base, sources, rejects


def list_photos(root: Path) -> tuple[list[Source], list[tuple[str, str]]]:
    """Every image file under `root` (recursively); keys are sanitised relative paths, unique. An image-named entry
    that is not a regular file (a FIFO, a device, a dangling link) is a reject saying what it is, never opened."""
    if not root.is_dir():
        raise BuildError(f"{root}: not a directory")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir())
    if not files:
        raise BuildError(f"{root}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    sources, rejects, seen = [], [], set()
    for path in files:
        rel = path.relative_to(root).as_posix()
        problem = file_problem(path)
        if problem:
            rejects.append((rel, problem))
            continue
        key = sample_key(rel)
        if key in seen:
            rejects.append((rel, f"duplicate key {key!r} after sanitising the name"))
            continue
        seen.add(key)
        sources.append(Source(key=key, gt=rel, group=Path(rel).parent.as_posix() if "/" in rel else None))
    return sources, rejects


# -- split and shard plan ------------------------------------------------------------------------------------


def _unit_hash(text: str) -> float:
    return int.from_bytes(hashlib.sha256(text.encode(errors="surrogateescape")).digest()[:8], "big") / 2**64


def plan_shards(
    sources: Sequence[Source], *, val_fraction: float, samples_per_shard: int, val_groups: Sequence[str] = ()
) -> list[ShardPlan]:
    """Deterministic split (by group when known, so a group never spans both splits) and shard assignment.

    `val_groups` names the groups to hold out instead (a photo's group is its folder; the first folder level
    counts, so `val_groups=["lomiri"]` holds out `lomiri/` and everything under it): the way to validate on sources
    the training never saw, which a hashed fraction of a few large sources cannot promise."""
    splits: dict[str, list[Source]] = {"train": [], "val": []}
    held_out = set(val_groups)
    for src in sorted(sources, key=lambda s: s.key):
        unit = src.group if src.group else src.key
        if held_out:
            val = bool(src.group) and src.group.split("/")[0] in held_out
        else:
            val = _unit_hash(unit) < val_fraction
        splits["val" if val else "train"].append(src)
    plans = []
    for split, items in splits.items():
        for i in range(0, len(items), samples_per_shard):
            plans.append(ShardPlan(f"{split}-{i // samples_per_shard:06d}", split, items[i : i + samples_per_shard]))
    return plans


# -- one sample ----------------------------------------------------------------------------------------------


def _rgb(root: Path, rel: str) -> np.ndarray:
    try:
        return read_rgb(root / rel)
    except ValueError as err:
        raise SampleError(rel, str(err)) from None


def _gray(root: Path, rel: str) -> GrayImage:
    try:
        return read_gray(root / rel)
    except ValueError as err:
        raise SampleError(rel, str(err)) from None


def pair_problem(inp: np.ndarray, gray_gt: np.ndarray, fill: int) -> str | None:
    """Why (H, W) uint8 `inp` is not a masked copy of `gray_gt`, or None when it plausibly is."""
    changed = inp != gray_gt
    if not changed.any():
        return None
    lost, fill_share = float(changed.mean()), float((inp[changed] == fill).mean())
    if lost <= MAX_LOST_FRACTION and fill_share >= MIN_FILL_SHARE:
        return None
    return (
        f"{lost:.1%} of its pixels differ from L(gt) and {fill_share:.1%} of those show one fill value; a masked "
        f"copy differs in at most {MAX_LOST_FRACTION:.0%}, nearly all showing the fill"
    )


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _resize_crop(img: Image.Image, size: int) -> Image.Image:
    return ImageOps.fit(img, (size, size), method=Image.Resampling.BICUBIC)


def build_sample(
    src: Source, root: Path, *, mode: str, size: int, seed: int, split: str, val_masks: str = "mixture"
) -> dict:
    """Decode, check and encode one sample; raises SampleError naming the file at fault when it is bad."""
    meta: dict = {"source": src.gt or src.input, "group": src.group}
    sample: dict = {"__key__": src.key}
    gt = None
    if src.gt is not None:
        gt = Image.fromarray(_rgb(root, src.gt))
        meta["original_size"] = list(gt.size)
    if mode == "photos":
        gt = _resize_crop(gt, size)
        sample["gt.png"] = _png(gt)
        if split == "val":  # fixed, seeded masks so evaluation is comparable across runs
            rng = np.random.default_rng([seed, int.from_bytes(hashlib.sha256(src.key.encode()).digest()[:4], "big")])
            known, fill = sample_known_mask(rng, size, size, VAL_MASKS[val_masks])
            gray = np.asarray(gt.convert("L"))
            sample["known.png"] = _png(Image.fromarray(known * 255))
            sample["input.png"] = _png(Image.fromarray(np.where(known == 1, gray, fill).astype(np.uint8)))
            meta["fill"] = fill
    else:
        image = _gray(root, src.input)
        if image.converted_from:
            raise SampleError(
                src.input, f"input is not grayscale (its color channels differ; mode {image.converted_from})"
            )
        inp = image.gray
        sample["input.png"] = _png(Image.fromarray(inp))
        if gt is not None:
            if gt.size != (inp.shape[1], inp.shape[0]):
                w, h = gt.size
                raise SampleError(
                    src.input, f"size {inp.shape[1]}x{inp.shape[0]} differs from its gt {src.gt} ({w}x{h})"
                )
            gray_gt = np.asarray(gt.convert("L"))
            known, fill = known_from_pair(inp, gray_gt)
            problem = pair_problem(inp, gray_gt, fill)
            if problem:
                raise SampleError(src.input, f"does not match its gt {src.gt}: {problem}")
            sample["gt.png"] = _png(gt)
            sample["known.png"] = _png(Image.fromarray(known * 255))
            meta["fill"] = fill
    sample["json"] = json.dumps(meta, sort_keys=True).encode()
    return sample
