"""Build validated WebDataset shards from the contest layout or from any folder of color photos.

    python -m data_prep.build_shards contest --root DIR [--csv train.csv] --out OUT
    python -m data_prep.build_shards photos  --root DIR --out OUT [--size 512]

Why it is built this way:
- Nothing bad lands in a shard: every sample is decoded (by the same rule as prediction and evaluation,
  `restoration.image_decoding`) and checked before it is written; a contest pair must look like a masked copy
  (few changed pixels, showing one fill value). Bad ones go to `OUT/rejected.csv` with the file at fault and the
  reason (or stop the build at once with `--strict`).
- A half-written shard is never taken for a whole one: each shard is written as `NAME.tar.tmp` and renamed when
  complete; a small receipt (`.receipts/NAME.json`: count, bytes, sha256, rejects and the shard's *recipe*) is
  written after the rename.
- Re-running resumes: a shard is kept only when its receipt's recipe (the arguments that shape samples and the
  list of samples) equals the one planned now and its sha256 matches; the rest are rebuilt, and shards of an
  earlier plan that this one lacks are deleted. So another `--val-fraction` into the same `--out` gives exactly
  what a fresh build gives. Shard contents are a pure function of the inputs and arguments (sorted keys, fixed tar
  mtimes, seeded val masks), so a resumed build is byte-identical to an uninterrupted one. `manifest.json` is
  removed when a build starts and written when it ends: it only ever describes a finished build.
- Val samples get fixed masks (seeded by their key) baked in, so every run is evaluated on the same inputs.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import itertools
import json
import re
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import webdataset as wds
from PIL import Image, ImageOps
from tqdm.auto import tqdm

from restoration.data.exact_mask import known_from_pair
from restoration.data.masks import MaskConfig, sample_known_mask
from restoration.image_decoding import max_pixels
from restoration.image_io import GrayImage, read_gray, read_rgb

FORMAT_VERSION = 1
RECIPE_VERSION = 2  # bump when build_sample's output changes for the same files and arguments
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
# masks baked into val samples of photo folders: the training mixture, or only the contest test style
VAL_MASKS = {"mixture": MaskConfig(), "contest": MaskConfig(test_style=1.0, train_style=0.0, free_form=0.0)}
_KEY_OK = re.compile(r"^[A-Za-z0-9_\-]+$")
_SHARD_NAME = re.compile(r"^(train|val)-\d{6}$")
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
        missing = [p for p in paths if not _inside(root, p).is_file()]
        if missing:
            rejects.append((missing[0], "file not found"))
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


def list_photos(root: Path) -> tuple[list[Source], list[tuple[str, str]]]:
    """Every image file under `root` (recursively); keys are sanitised relative paths, unique."""
    if not root.is_dir():
        raise BuildError(f"{root}: not a directory")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise BuildError(f"{root}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    sources, rejects, seen = [], [], set()
    for path in files:
        rel = path.relative_to(root).as_posix()
        key = re.sub(r"[^A-Za-z0-9_\-]", "_", rel.rsplit(".", 1)[0])
        if key in seen:
            rejects.append((rel, f"duplicate key {key!r} after sanitising the name"))
            continue
        seen.add(key)
        sources.append(Source(key=key, gt=rel, group=Path(rel).parent.as_posix() if "/" in rel else None))
    return sources, rejects


# -- split and shard plan ------------------------------------------------------------------------------------


def _unit_hash(text: str) -> float:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


def plan_shards(sources: Sequence[Source], *, val_fraction: float, samples_per_shard: int) -> list[ShardPlan]:
    """Deterministic split (by group when known, so a group never spans both splits) and shard assignment."""
    splits: dict[str, list[Source]] = {"train": [], "val": []}
    for src in sorted(sources, key=lambda s: s.key):
        unit = src.group if src.group else src.key
        splits["val" if _unit_hash(unit) < val_fraction else "train"].append(src)
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


# -- one shard -----------------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _receipt_path(out: Path, name: str) -> Path:
    return out / ".receipts" / f"{name}.json"


def _stamp(root: Path, rel: str | None) -> list[int] | None:
    """(bytes, mtime) of a source file: a file replaced in place (say, a fixed reject) changes its shard's recipe."""
    if rel is None:
        return None
    try:
        stat = (root / rel).stat()
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def shard_recipe(plan: ShardPlan, root: Path, *, mode: str, size: int, seed: int, val_masks: str) -> dict:
    """What a shard's bytes depend on: the arguments that shape its samples (only those that apply to its mode and
    split) and its samples in order, with each file's size and mtime standing in for its contents. The receipt keeps
    it; a different one means rebuild."""
    photos, baked_masks = mode == "photos", mode == "photos" and plan.split == "val"
    recipe = {
        "recipe_version": RECIPE_VERSION,
        "mode": mode,
        "root": str(root.resolve()),
        "split": plan.split,
        "size": size if photos else None,
        "seed": seed if baked_masks else None,
        "val_masks": val_masks if baked_masks else None,
        "max_pixels": max_pixels(),
        "samples": [[s.key, s.input, s.gt, s.group, _stamp(root, s.input), _stamp(root, s.gt)] for s in plan.sources],
    }
    return json.loads(json.dumps(recipe))  # as a receipt reads back (tuples become lists)


def shard_is_complete(out: Path, name: str, recipe: dict) -> bool:
    """The shard on disk is whole (its sha256 matches its receipt) and was built from `recipe`."""
    tar, receipt = out / f"{name}.tar", _receipt_path(out, name)
    if not (tar.is_file() and receipt.is_file()):
        return False
    try:
        kept = json.loads(receipt.read_text())
        return kept.get("recipe") == recipe and kept["sha256"] == _sha256(tar)
    except (OSError, ValueError, KeyError, AttributeError):
        return False


def remove_stale(out: Path, planned: set[str]) -> None:
    """Delete shards and receipts of an earlier plan that the current one lacks (only names this tool writes)."""
    for tar in out.glob("*.tar"):
        if _SHARD_NAME.match(tar.stem) and tar.stem not in planned:
            tar.unlink()
    for receipt in out.glob(".receipts/*.json"):
        if receipt.stem not in planned:
            receipt.unlink()


SampleResult = tuple[dict | None, list[str] | None]  # (the encoded sample, or [path at fault, reason])


def sample_or_reject(job: tuple[Source, Path, str, dict]) -> SampleResult:
    """`build_sample` for one (source, root, split, shaping arguments); a bad sample comes back as its reject.
    Runs in the worker processes of a parallel build."""
    src, root, split, shaping = job
    try:
        return build_sample(src, root, split=split, **shaping), None
    except SampleError as err:
        return None, [err.path, str(err)]


def write_shard(
    plan: ShardPlan,
    root: Path,
    out: Path,
    *,
    mode: str,
    size: int,
    seed: int,
    strict: bool,
    val_masks: str = "mixture",
    built: Iterable[SampleResult] | None = None,
) -> dict:
    """Build one shard atomically; returns its receipt (count, bytes, sha256, rejects, recipe). `built`: the
    results of `plan.sources` in order when worker processes made them, else they are made here."""
    recipe = shard_recipe(plan, root, mode=mode, size=size, seed=seed, val_masks=val_masks)
    _receipt_path(out, plan.name).unlink(missing_ok=True)  # no receipt vouches for this name until it is rebuilt
    shaping = {"mode": mode, "size": size, "seed": seed, "val_masks": val_masks}
    if built is None:
        built = (sample_or_reject((src, root, plan.split, shaping)) for src in plan.sources)
    tmp = out / f"{plan.name}.tar.tmp"
    rejects = []
    count = 0
    with open(tmp, "wb") as fh:
        writer = wds.TarWriter(fh, mtime=0.0)
        try:
            for sample, reject in built:
                if reject is not None:
                    if strict:
                        raise BuildError(f"{reject[0]}: {reject[1]}")
                    rejects.append(reject)
                    continue
                writer.write(sample)
                count += 1
        finally:  # also on --strict's stop: an unclosed tar stream would write into the closed file when collected
            writer.close()
    final = out / f"{plan.name}.tar"
    tmp.replace(final)
    receipt = {"name": final.name, "split": plan.split, "count": count, "bytes": final.stat().st_size}
    receipt |= {"sha256": _sha256(final), "rejects": rejects, "recipe": recipe}
    path = _receipt_path(out, plan.name)
    path.parent.mkdir(exist_ok=True)
    path.with_suffix(".tmp").write_text(json.dumps(receipt))
    path.with_suffix(".tmp").replace(path)
    return receipt


# -- the build -----------------------------------------------------------------------------------------------


def build(
    mode: str,
    root: Path,
    out: Path,
    *,
    csv_name: str = "train.csv",
    size: int = 512,
    val_fraction: float = 0.05,
    samples_per_shard: int = 1000,
    workers: int = 1,
    seed: int = 0,
    strict: bool = False,
    progress: bool = True,
    val_masks: str = "mixture",
) -> dict:
    """Build (or resume) the shards; returns the manifest written to `out/manifest.json`."""
    root, out = Path(root), Path(out)
    if not 0 <= val_fraction < 1:
        raise BuildError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    if samples_per_shard < 1:
        raise BuildError(f"--samples-per-shard must be >= 1, got {samples_per_shard}")
    if val_masks not in VAL_MASKS:
        raise BuildError(f"--val-masks must be one of {sorted(VAL_MASKS)}, got {val_masks!r}")
    try:
        max_pixels()
    except ValueError as err:
        raise BuildError(str(err)) from None
    sources, listing_rejects = list_contest(root, csv_name) if mode == "contest" else list_photos(root)
    if strict and listing_rejects:
        path, reason = listing_rejects[0]
        raise BuildError(f"{path}: {reason}")
    out.mkdir(parents=True, exist_ok=True)
    for finished_only in ("manifest.json", "rejected.csv"):  # written again when this build ends
        (out / finished_only).unlink(missing_ok=True)
    for stale in out.glob("*.tar.tmp"):
        stale.unlink()
    plans = plan_shards(sources, val_fraction=val_fraction, samples_per_shard=samples_per_shard)
    remove_stale(out, {p.name for p in plans})
    shaping = {"mode": mode, "size": size, "seed": seed, "val_masks": val_masks}
    todo = [p for p in plans if not shard_is_complete(out, p.name, shard_recipe(p, root, **shaping))]
    options = {**shaping, "strict": strict}
    bar = tqdm(total=len(plans), initial=len(plans) - len(todo), unit="shard", disable=not progress, desc="shards")
    if workers > 1 and sum(len(p.sources) for p in todo) > 1:
        # the samples (decode, check, encode: nearly all the work) are made by a pool, in order, across shard
        # boundaries; this process writes them into the shards one after another, so the bytes are those of a
        # one-process build and any number of workers is used whatever the number of shards
        pool = ProcessPoolExecutor(max_workers=workers)
        try:
            jobs = [(src, root, plan.split, shaping) for plan in todo for src in plan.sources]
            results = pool.map(sample_or_reject, jobs)
            for plan in todo:
                write_shard(plan, root, out, **options, built=itertools.islice(results, len(plan.sources)))
                bar.update(1)
        finally:  # a stop (--strict, Ctrl-C) does not wait for the samples still queued
            pool.shutdown(wait=True, cancel_futures=True)
    else:
        for plan in todo:
            write_shard(plan, root, out, **options)
            bar.update(1)
    bar.close()

    receipts = [json.loads(_receipt_path(out, p.name).read_text()) for p in plans]
    rejects = [tuple(r) for r in listing_rejects] + [tuple(r) for rec in receipts for r in rec["rejects"]]
    if strict and rejects:  # kept shards of an earlier, non-strict build may hold rejects
        path, reason = rejects[0]
        raise BuildError(f"{path}: {reason}")
    with open(out / "rejected.csv.tmp", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "reason"])
        writer.writerows(rejects)
    (out / "rejected.csv.tmp").replace(out / "rejected.csv")
    totals = {split: sum(r["count"] for r in receipts if r["split"] == split) for split in ("train", "val")}
    manifest = {
        "format_version": FORMAT_VERSION,
        "mode": mode,
        "args": {
            "root": str(root),
            "csv": csv_name if mode == "contest" else None,
            "size": size if mode == "photos" else None,
            "val_fraction": val_fraction,
            "samples_per_shard": samples_per_shard,
            "seed": seed,
            "val_masks": val_masks if mode == "photos" else None,
        },
        "shards": [{k: r[k] for k in ("name", "split", "count", "bytes", "sha256")} for r in receipts],
        "totals": {**totals, "rejected": len(rejects)},
    }
    (out / "manifest.json.tmp").write_text(json.dumps(manifest, indent=2))
    (out / "manifest.json.tmp").replace(out / "manifest.json")
    return manifest


def build_photo_shards(
    root: Path,
    out: Path,
    *,
    size: int = 512,
    val_fraction: float = 0.05,
    samples_per_shard: int = 1000,
    workers: int = 1,
    seed: int = 0,
    progress: bool = False,
    val_masks: str = "mixture",
) -> dict:
    """Programmatic entry for a folder of photos (the demo, the quality study and tests use it)."""
    return build(
        "photos",
        root,
        out,
        size=size,
        val_fraction=val_fraction,
        samples_per_shard=samples_per_shard,
        workers=workers,
        seed=seed,
        progress=progress,
        val_masks=val_masks,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="restoration-shards", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    for mode in ("contest", "photos"):
        p = sub.add_parser(mode, help=f"build shards from the {mode} layout")
        p.add_argument("--root", type=Path, required=True)
        p.add_argument("--out", type=Path, required=True)
        if mode == "contest":
            p.add_argument("--csv", default="train.csv", help="train.csv (input + gt) or test.csv (inputs only)")
        else:
            p.add_argument("--size", type=int, default=512, help="resize and center-crop to this square size")
            p.add_argument(
                "--val-masks", choices=sorted(VAL_MASKS), default="mixture",
                help="masks baked into the val samples: the training mixture or contest polygons only",
            )  # fmt: skip
        p.add_argument("--val-fraction", type=float, default=0.05)
        p.add_argument("--samples-per-shard", type=int, default=1000)
        p.add_argument("--workers", type=int, default=1)
        p.add_argument("--seed", type=int, default=0, help="seeds the val masks")
        p.add_argument("--strict", action="store_true", help="stop at the first bad input (non-zero exit)")
    ns = parser.parse_args(argv)
    try:
        manifest = build(
            ns.mode,
            ns.root,
            ns.out,
            csv_name=getattr(ns, "csv", "train.csv"),
            size=getattr(ns, "size", 512),
            val_fraction=ns.val_fraction,
            samples_per_shard=ns.samples_per_shard,
            workers=ns.workers,
            seed=ns.seed,
            strict=ns.strict,
            val_masks=getattr(ns, "val_masks", "mixture"),
        )
    except BuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    t = manifest["totals"]
    print(
        f"{ns.out}: {t['train']} train + {t['val']} val samples in {len(manifest['shards'])} shards; "
        f"{t['rejected']} rejected (see {ns.out / 'rejected.csv'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
