"""Build validated WebDataset shards from the contest layout or from any folder of color photos (the library behind
`python -m data_prep.build_shards`; `build_photo_shards` for the demo, the built-in data and the benchmarks).

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
- Stopping is safe: `--out` is checked before any work (a file in its place or a read-only folder is an
  `OutputError`); on Ctrl-C the worker processes stay silent (they ignore SIGINT; the pool is shut down, queued
  samples cancelled) and the shards completed so far are kept for the rerun. `rejected.csv` names files as the file
  system gives them (a non-UTF-8 name as its own bytes).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import re
import signal
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import webdataset as wds
from tqdm.auto import tqdm

from restoration.data.shard_sources import (
    VAL_MASKS,
    BuildError,
    SampleError,
    ShardPlan,
    Source,
    build_sample,
    list_contest,
    list_photo_roots,
    plan_shards,
)
from restoration.image_decoding import max_pixels
from restoration.image_io import writable_folder, write_report_csv

FORMAT_VERSION = 1
RECIPE_VERSION = 2  # bump when build_sample's output changes for the same files and arguments
_SHARD_NAME = re.compile(r"^(train|val)-\d{6}$")


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


def _quiet_worker() -> None:
    """Pool initializer: Ctrl-C is the main process's to handle (it stops the build and says so once); a worker that
    raised KeyboardInterrupt too would print its own traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while the pool forks its workers, so none is born with Python's handler (closes the moment
    between its start and `_quiet_worker`); a no-op outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def build(
    mode: str,
    root: Path | Sequence[Path],
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
    val_groups: Sequence[str] = (),
) -> dict:
    """Build (or resume) the shards; returns the manifest written to `out/manifest.json`. `root` may be several
    photo folders (`list_photo_roots`: one dataset read from their common parent)."""
    roots = [Path(r) for r in root] if isinstance(root, list | tuple) else [Path(root)]
    if mode == "contest" and len(roots) != 1:
        raise BuildError("contest: one --root (the folder holding train_input/, train_gt/ and the csv)")
    root, out = roots[0], Path(out)
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
    if mode == "contest":
        sources, listing_rejects = list_contest(root, csv_name)
    else:
        root, sources, listing_rejects = list_photo_roots(roots)
    if strict and listing_rejects:
        path, reason = listing_rejects[0]
        raise BuildError(f"{path}: {reason}")
    writable_folder(out, "--out")
    for finished_only in ("manifest.json", "rejected.csv"):  # written again when this build ends
        (out / finished_only).unlink(missing_ok=True)
    for stale in out.glob("*.tar.tmp"):
        stale.unlink()
    plans = plan_shards(sources, val_fraction=val_fraction, samples_per_shard=samples_per_shard, val_groups=val_groups)
    if val_groups and not any(p.split == "val" for p in plans):
        raise BuildError(f"--val-groups {','.join(val_groups)}: no such group (folder or group column) in {root}")
    remove_stale(out, {p.name for p in plans})
    shaping = {"mode": mode, "size": size, "seed": seed, "val_masks": val_masks}
    todo = [p for p in plans if not shard_is_complete(out, p.name, shard_recipe(p, root, **shaping))]
    options = {**shaping, "strict": strict}
    with tqdm(
        total=len(plans), initial=len(plans) - len(todo), unit="shard", disable=not progress, desc="shards"
    ) as bar:  # its line ends also on Ctrl-C or an error
        if workers > 1 and sum(len(p.sources) for p in todo) > 1:
            # the samples (decode, check, encode: nearly all the work) are made by a pool, in order, across shard
            # boundaries; this process writes them into the shards one after another, so the bytes are those of a
            # one-process build and any number of workers is used whatever the number of shards
            pool = ProcessPoolExecutor(max_workers=workers, initializer=_quiet_worker)
            try:
                jobs = [(src, root, plan.split, shaping) for plan in todo for src in plan.sources]
                with _sigint_ignored():  # the workers start here
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

    receipts = [json.loads(_receipt_path(out, p.name).read_text()) for p in plans]
    rejects = [tuple(r) for r in listing_rejects] + [tuple(r) for rec in receipts for r in rec["rejects"]]
    if strict and rejects:  # kept shards of an earlier, non-strict build may hold rejects
        path, reason = rejects[0]
        raise BuildError(f"{path}: {reason}")
    write_report_csv(out / "rejected.csv", ["path", "reason"], rejects)
    totals = {split: sum(r["count"] for r in receipts if r["split"] == split) for split in ("train", "val")}
    manifest = {
        "format_version": FORMAT_VERSION,
        "mode": mode,
        "args": {
            "root": str(root),
            **({"roots": [str(r) for r in roots]} if len(roots) > 1 else {}),
            "csv": csv_name if mode == "contest" else None,
            "size": size if mode == "photos" else None,
            "val_fraction": val_fraction,
            "val_groups": list(val_groups),
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
    root: Path | Sequence[Path],
    out: Path,
    *,
    size: int = 512,
    val_fraction: float = 0.05,
    samples_per_shard: int = 1000,
    workers: int = 1,
    seed: int = 0,
    progress: bool = False,
    val_masks: str = "mixture",
    val_groups: Sequence[str] = (),
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
        val_groups=val_groups,
    )
