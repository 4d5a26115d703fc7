"""Predictions scored with the contest metric (S, M, C, score) and PSNR: `evaluate_files`, the scorer behind
`restoration-evaluate` (`restoration.evaluate`), the demo and the benchmarks; and the anchors (input unchanged,
classical fills, true gray) scored exactly as a submission is (`score_anchors`). Each image is scored by
`metrics.score_image`, the rule validation during training uses too.

The lost region (needed for M) comes either from mask files (white = lost, or `mask_white="known"`) or, exactly,
from the masked inputs: lost = input != L(gt), as the contest data was made (`known_from_pair`). Files are matched
by name without extension, so a submission zip, a prediction folder and the contest folders line up.

Every image is decoded by the rule that prediction and shard building use (`restoration.image_decoding`). A file
that cannot be used (damaged, over the pixel limit, a zip member with a bad CRC or unpacking to more bytes than
`zip_member_limit()`, checked before it is read) is reported by its path in `errors` and not scored, and so is an
image whose score is not defined (`metrics`: smaller than the 7x7 SSIM window); the mean is over the scored images
only. A folder or zip holding one name twice (`img2.png` and `c/img2.png`) is refused (`InputError`): scoring one
of them would be a guess.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from restoration.anchors import ANCHORS, anchor_rgb
from restoration.data.exact_mask import known_from_pair
from restoration.image_decoding import MAX_PIXELS_ENV, max_pixels
from restoration.image_io import (
    IMAGE_SUFFIXES,
    InputError,
    image_entries,
    list_inputs,
    read_gray,
    read_rgb,
    write_png_atomic,
)
from restoration.metrics import score_image

CONTEST_KEYS = ("S", "M", "C", "score")  # what the contest scores an answer by
KEYS = (*CONTEST_KEYS, "psnr")
MEMBER_HEADROOM = 1 << 20  # headers and metadata of an image file beyond its pixels
T = TypeVar("T")


def _read(what: str, path: Path, read: Callable[[Path], T]) -> T:
    """`read(path)`, its ValueError naming the file: 'input x/TEST_001.png: not a readable image (...)'."""
    try:
        return read(path)
    except ValueError as err:
        raise ValueError(f"{what} {path}: {err}") from None


def _images_in(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    found: dict[str, Path] = {}
    for path in image_entries(folder):  # a FIFO or a dangling link too: reported by what it is when read
        if path.stem in found:
            raise InputError(f"{folder}: two files named {path.stem!r} ({found[path.stem]} and {path})")
        found[path.stem] = path
    return found


def zip_member_limit() -> int:
    """The most bytes one zip member may unpack to: an uncompressed 8-bit RGBA image at the pixel limit (4 bytes a
    pixel, `RESTORATION_MAX_PIXELS`) plus 1 MiB of headers; 257 MiB by default. A submission's PNGs are far smaller;
    a member beyond it cannot be an image we would decode, and reading it whole would only fill the memory (a 1 MB
    zip can hold a 1 GiB member)."""
    return max_pixels() * 4 + MEMBER_HEADROOM


def _read_member(zf: zipfile.ZipFile, member: str, limit: int) -> bytes:
    """The member's bytes, refused (ValueError) when it declares or unpacks to more than `limit` bytes: its
    declared size is checked before anything is read, and at most `limit` + 1 bytes are read in case it lies."""
    info = zf.getinfo(member)
    over = f"over the {limit:,}-byte limit for one image (4 bytes a pixel at {MAX_PIXELS_ENV} plus 1 MiB)"
    if info.file_size > limit:
        raise ValueError(f"unpacks to {info.file_size:,} bytes, {over}")
    with zf.open(info) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"unpacks to more than it declares ({info.file_size:,} bytes), {over}")
    return data


def member_name(info: zipfile.ZipInfo) -> str:
    """A zip member's name as the file system gave it. `zipfile` reads a name stored without the UTF-8 flag as cp437;
    such a name is the file's own bytes (`restoration-predict --zip` stores a non-UTF-8 file name that way, as
    Info-ZIP's `zip` does on Unix), so it is read back as those bytes (`os.fsdecode`) and matches the file's name."""
    if info.flag_bits & 0x800 or info.filename.isascii():
        return info.filename
    return os.fsdecode(info.filename.encode("cp437"))


def _zip_readers(pred: Path) -> dict[str, Callable[[], np.ndarray]]:
    try:
        zf = zipfile.ZipFile(pred)
    except (zipfile.BadZipFile, OSError) as err:
        raise InputError(f"{pred}: not a readable zip file ({err})") from None
    by_name: dict[str, list[str]] = {}
    for info in zf.infolist():
        if not info.is_dir() and Path(info.filename).suffix.lower() in IMAGE_SUFFIXES:
            by_name.setdefault(Path(member_name(info)).stem, []).append(info.filename)
    clashes = sorted(members for members in by_name.values() if len(members) > 1)
    if clashes:
        listing = "; ".join(" and ".join(members) for members in clashes[:10])
        raise InputError(f"{pred}: predictions are matched by file name and these names occur twice: {listing}")

    def reader(member: str) -> Callable[[], np.ndarray]:
        def read() -> np.ndarray:
            try:
                data = _read_member(zf, member, zip_member_limit())
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError) as err:
                raise ValueError(f"zip member {member!r} of {pred}: damaged ({err})") from None
            except ValueError as err:
                raise ValueError(f"zip member {member!r} of {pred}: {err}") from None
            try:
                return read_rgb(data)
            except ValueError as err:
                raise ValueError(f"zip member {member!r} of {pred}: {err}") from None

        return read

    return {name: reader(members[0]) for name, members in by_name.items()}


def prediction_readers(pred: Path) -> dict[str, Callable[[], np.ndarray]]:
    """name -> a function reading that prediction as RGB, for a folder or a (submission) zip; its ValueError names
    the file."""
    if pred.is_file() and zipfile.is_zipfile(pred):
        return _zip_readers(pred)
    if pred.is_file():
        raise InputError(f"{pred}: expected a folder of predictions or a zip file")
    return {stem: (lambda p=path: _read("prediction", p, read_rgb)) for stem, path in _images_in(pred).items()}


def known_from_mask_file(path: Path, white: str) -> np.ndarray:
    arr = np.asarray(read_gray(path).gray)
    marked = arr > 127
    return (marked if white == "known" else ~marked).astype(np.uint8)


def evaluate_files(
    pred: Path,
    gt: Path,
    *,
    masks: Path | None = None,
    inputs: list[str] | None = None,
    mask_white: str = "lost",
    device: str = "cpu",
) -> dict:
    """Per-image scores and their mean; images without a prediction are reported as `missing`, images that cannot
    be read or scored (a score that is not a finite number, an image smaller than the SSIM window) in `errors`.
    Only scored images are averaged: the mean is never NaN, and None when no image was scored."""
    gts = _images_in(gt)
    preds = prediction_readers(pred)
    mask_files = _images_in(masks) if masks is not None else {}
    input_files = {Path(item.name).stem: item.path for item in list_inputs(inputs)} if inputs else {}
    rows, errors = [], []
    missing = sorted(set(gts) - set(preds))
    for name in tqdm(sorted(set(gts) & set(preds)), desc="scoring", unit="img"):
        try:
            gt_rgb = _read("ground truth", gts[name], read_rgb)
            pred_rgb = preds[name]()
            if pred_rgb.shape != gt_rgb.shape:
                raise ValueError(f"size {pred_rgb.shape[1]}x{pred_rgb.shape[0]} differs from the ground truth's "
                                 f"{gt_rgb.shape[1]}x{gt_rgb.shape[0]}")  # fmt: skip
            if masks is not None:
                if name not in mask_files:
                    raise ValueError(f"no mask named {name} in {masks}")
                known = _read("mask", mask_files[name], lambda p: known_from_mask_file(p, mask_white))
            else:
                if name not in input_files:
                    raise ValueError("no input image of this name")
                gray_gt = np.asarray(Image.fromarray(gt_rgb).convert("L"))
                known, _ = known_from_pair(_read("input", input_files[name], lambda p: read_gray(p).gray), gray_gt)
            if known.shape != gt_rgb.shape[:2]:
                raise ValueError("the mask/input size differs from the ground truth's")
            scores = score_image(pred_rgb, gt_rgb, known, device)
            undefined = [k for k in KEYS if not np.isfinite(scores[k])]
            if undefined:
                raise ValueError(f"score not defined ({', '.join(f'{k} = {scores[k]}' for k in undefined)})")
        except ValueError as err:
            errors.append({"name": name, "error": str(err)})
            continue
        rows.append({"name": name, **scores, "lost_fraction": float(1 - known.mean())})
    mean = {k: float(np.mean([r[k] for r in rows])) if rows else None for k in KEYS}
    return {"mean": mean, "count": len(rows), "images": rows, "missing": missing, "errors": errors}


def format_table(result: dict, per_image: bool) -> str:
    lines = [f"{'image':<28} " + " ".join(f"{k:>8}" for k in KEYS)]
    if per_image:
        for r in result["images"]:
            lines.append(f"{r['name'][:28]:<28} " + " ".join(f"{r[k]:8.4f}" for k in KEYS))
    mean = result["mean"]
    cells = (f"{mean[k]:8.4f}" if mean[k] is not None else f"{'-':>8}" for k in KEYS)
    lines.append(f"{'mean of ' + str(result['count']):<28} " + " ".join(cells))
    return "\n".join(lines)


# -- the anchors scored on a contest folder exactly as a submission is (the demo and the benchmarks) -------------------


def contest_pairs(contest: Path) -> list[dict]:
    """key, input gray, ground truth, its gray and the true known mask of every file of a contest folder
    (`gt/`, `test_input/` and `test.csv`, the layout `restoration.demo.write_contest_folder` makes)."""
    pairs = []
    for path in sorted((contest / "gt").glob("*.png")):
        gt = np.asarray(Image.open(path).convert("RGB"))
        gray_gt = np.asarray(Image.fromarray(gt).convert("L"))
        gray_in = np.asarray(Image.open(contest / "test_input" / path.name).convert("L"))
        known, _ = known_from_pair(gray_in, gray_gt)
        pairs.append({"key": path.stem, "input": gray_in, "gt": gt, "gray_gt": gray_gt, "known": known})
    return pairs


def score_contest_folder(pred_dir: Path, contest: Path) -> dict:
    """A folder of predictions for a contest-layout set (`gt/`, `test_input/`, `test.csv`) scored like a submission:
    the lost region comes from each input against its ground truth."""
    return evaluate_files(pred_dir, contest / "gt", inputs=[str(contest / "test.csv")])


def score_answers(contest: Path, pairs: list[dict], answers: list[np.ndarray], pred_dir: Path) -> dict:
    """(H, W, 3) uint8 answers, one per pair, written to `pred_dir` and scored against the folder's ground truth."""
    for pair, rgb in zip(pairs, answers, strict=True):
        write_png_atomic(rgb, pred_dir / f"{pair['key']}.png")
    return score_contest_folder(pred_dir, contest)


def score_anchors(contest: Path, dst: Path, names: Sequence[str] = ANCHORS) -> dict[str, dict]:
    """Each named anchor (`restoration.anchors.anchor_rgb`) scored like a submission, its PNGs in
    `dst/anchor-<name>/`."""
    pairs = contest_pairs(contest)
    results = {}
    for name in names:
        answers = [anchor_rgb(name, p["input"], p["known"], p["gray_gt"]) for p in pairs]
        results[name] = score_answers(contest, pairs, answers, dst / f"anchor-{name}")
    return results
