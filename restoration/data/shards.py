"""The data pipeline: train and val loaders over the WebDataset shards, and the on-device batch preparation.

- Train: resampled shards (each rank and worker draws shards with its own seed, so nothing needs splitting and no
  rank ever runs dry), a shuffle buffer, decoding, masks drawn in the workers for samples without one (seeded by
  seed, rank, worker and sample count), batching in the workers, and a fixed number of batches per rank per epoch
  (`batches_per_epoch`, the same on every rank: no DDP hang at an epoch's end), cut from one endless stream, so
  each epoch continues where the last one stopped (new order and masks, every sample reached). Not passed through
  `accelerator.prepare`, which would re-shard or broadcast an iterable stream. Workers write batches into a few
  reused shared-memory slots (`batch_ring`) instead of a fresh segment each: a train batch stays valid for as long
  as it, or a view of it, is referenced; its slot is reused after that.
- Val: every rank reads the val shards in order and keeps the samples whose index is congruent to its rank, so the
  ranks see disjoint parts that together cover every val sample exactly once; a sample without a baked mask gets
  one seeded by its key.
- Both go through one sample stage (`sample_batches`: decode, skip corrupt samples, draw missing masks, batch);
  they differ only in where the mask generator comes from and in the corrupt-sample limit.
- A corrupt sample is skipped, counted (`corrupt_count` on the loader, summed over workers) and logged; more than
  `max_corrupt` in one train worker stops the run with the sample's key.
- `prepare_batch` runs on the device: kornia flips and resized crops applied identically to image and mask, then
  the exact PIL 'L' of the augmented uint8 image, and the masked input as the contest shows it (gray outside the
  hole, one uniform fill value inside).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import math
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import kornia.augmentation as K
import numpy as np
import torch
import webdataset as wds
from PIL import Image
from torch import Tensor
from tqdm.auto import tqdm

try:  # libpng straight into a tensor (torchvision 0.29 deprecates its image IO for TorchCodec: PIL is the fallback)
    from torchvision.io import decode_png
except ImportError:  # pragma: no cover - a torchvision without image IO
    decode_png = None

from restoration.data.batch_ring import RING_KEY, MainRings, WorkerRing
from restoration.data.color import rgb_to_gray_u8, u8_to_signed
from restoration.data.masks import MaskConfig, sample_known_mask
from restoration.data.tar_reader import tar_to_samples

log = logging.getLogger(__name__)


@dataclass
class DataConfig:
    root: Path = Path("builtin")  # shards with manifest.json (data_prep.build_shards), or `builtin` (demo photos)
    image_size: int = 256  # training resolution; shards at another size are resized in the workers
    num_workers: int = 2
    shuffle_buffer: int = 256
    batches_per_epoch: int = 0  # 0 = train samples / (batch size x ranks), at least 1
    max_corrupt: int = 100
    stall_timeout_s: float = 300.0  # no batch for this long stops the run with a message naming the shards
    shm_slots: int = 6  # reused shared-memory batch buffers per train worker (batch_ring); 0 = a fresh one per batch
    # check every shard against the size and sha256 its manifest records before training (`verify_shards`; hashed
    # once per run, the ranks sharing the work; a resume hashes only files that changed since)
    verify_shards: bool = True
    augment: bool = True
    min_crop_scale: float = 0.6  # resized-crop area range [min_crop_scale, 1]
    mask: MaskConfig = field(default_factory=MaskConfig)


def read_manifest(root: Path) -> dict:
    path = Path(root) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no manifest. Build shards first: python -m data_prep.build_shards photos --root PHOTOS "
            f"--out {root}"
        )
    return json.loads(path.read_text())


def shard_counts(root: Path, split: str) -> dict[str, int]:
    """url -> number of samples the manifest records, for the non-empty shards of `split`."""
    manifest = read_manifest(root)
    counts = {str(Path(root) / s["name"]): s["count"] for s in manifest["shards"] if s["split"] == split and s["count"]}
    if not counts:
        raise FileNotFoundError(f"{Path(root) / 'manifest.json'}: no non-empty {split} shards")
    return counts


def shard_urls(root: Path, split: str) -> list[str]:
    return list(shard_counts(root, split))


class ShardMismatch(ValueError):
    """A shard is missing or is not the file its manifest records; the message names it and what to do."""


def _file_id(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino]


def _sha256(path: Path, progress: Callable[[int], object]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(8 << 20):
            digest.update(chunk)  # releases the GIL: the hashing threads run in parallel
            progress(len(chunk))
    return digest.hexdigest()


def verify_shards(
    root: Path, *, verified: dict[str, dict], rank: int = 0, world_size: int = 1, progress: bool = False
) -> dict[str, dict]:
    """Check the shards of `root` against the sizes and sha256 its manifest records, before a run reads them: a
    shard swapped for another, truncated or rebuilt without its manifest would otherwise be trained on with only
    warnings. Every rank checks every size (a stat each) and hashes its share (every `world_size`-th shard), except
    files `verified` (path -> file size, mtime, inode and sha256 of an earlier check) says are unchanged since.

    Hashing all shards at each start would cost minutes per TB on every requeue; once per run (the caller keeps the
    results) is what a swapped file needs. Returns this rank's newly hashed shards, all matching; raises
    `ShardMismatch` naming the first that differs. A manifest without sha256 (older builds) is checked by size."""
    root = Path(root)
    manifest_path = root / "manifest.json"
    shards = read_manifest(root)["shards"]

    def refuse(path: Path, what: str) -> ShardMismatch:
        return ShardMismatch(
            f"{path}: not the shard {manifest_path} records ({what}): it was replaced or changed after the shards "
            "were built; rebuild the shards (rerun the restoration-shards command that wrote them: it rebuilds "
            "the shards that changed) or put the original back; data.verify_shards=false trains on them unchecked"
        )

    todo: list[tuple[Path, str, list[int]]] = []
    for index, shard in enumerate(shards):
        path = root / shard["name"]
        try:
            file_id = _file_id(path)
        except OSError as err:
            raise refuse(path, err.strerror or type(err).__name__) from err
        if "bytes" in shard and file_id[0] != shard["bytes"]:
            raise refuse(path, f"{file_id[0]:,} bytes instead of {shard['bytes']:,}")
        known = verified.get(str(path.resolve()), {})
        fresh = known.get("file") == file_id and known.get("sha256") == shard.get("sha256")
        if shard.get("sha256") and not fresh and index % world_size == rank:
            todo.append((path, shard["sha256"], file_id))
    if not todo:
        return {}
    total = sum(file_id[0] for _, _, file_id in todo)
    bar = tqdm(total=total, unit="B", unit_scale=True, desc="verifying shards", disable=not progress or total < 2**30)
    lock = threading.Lock()

    def advance(n: int) -> None:
        with lock:
            bar.update(n)

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        digests = list(pool.map(lambda job: _sha256(job[0], advance), todo))
    bar.close()
    for (path, expected, _), digest in zip(todo, digests):
        if digest != expected:
            raise refuse(path, f"sha256 {digest[:16]}... instead of {expected[:16]}...")
    return {
        str(path.resolve()): {"file": file_id, "sha256": digest} for (path, _, file_id), digest in zip(todo, digests)
    }


def _png(data: bytes, mode: str) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img if img.mode == mode else img.convert(mode)  # convert() copies even when the mode already matches


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOR_TYPE = {"RGB": 2, "L": 0}


def _png_array(data: bytes, mode: str, size: int) -> np.ndarray | None:
    """The pixels of an 8-bit PNG that is already in `mode` and `size` x `size` (what the shard builder writes),
    decoded by libpng straight into an array: (H, W, 3) for RGB, (H, W) for L. Lossless, so the same values as PIL,
    without PIL's copy out of its image. None for anything else, left to PIL."""
    if decode_png is None or len(data) < 26 or data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        return None
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if (width, height) != (size, size) or data[24] != 8 or data[25] != _PNG_COLOR_TYPE[mode]:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            pixels = decode_png(torch.frombuffer(bytearray(data), dtype=torch.uint8))  # (C, H, W) view of (H, W, C)
    except RuntimeError:  # damaged: PIL decides, with its own message
        return None
    return pixels.permute(1, 2, 0).numpy() if mode == "RGB" else pixels[0].numpy()


class CorruptSample(ValueError):
    pass


def decode(sample: dict, size: int) -> dict:
    """Raw tar sample -> uint8 arrays at `size` (gt (H, W, 3); known (H, W) in {0, 1} when present) + fill."""
    key = sample.get("__key__", "?")
    try:
        gt = _png_array(sample["gt.png"], "RGB", size)
        if gt is None:
            gt = _png(sample["gt.png"], "RGB")
        meta = json.loads(sample["json"]) if "json" in sample else {}
        known = None
        if "known.png" in sample:
            known = _png_array(sample["known.png"], "L", size)
            if known is None:
                known = _png(sample["known.png"], "L")
    except Exception as err:  # noqa: BLE001 - any decoding problem makes the sample unusable
        raise CorruptSample(f"sample {key} from {sample.get('__url__', '?')}: {type(err).__name__}: {err}") from err
    if isinstance(gt, Image.Image) and gt.size != (size, size):
        gt = gt.resize((size, size), Image.Resampling.BICUBIC)
        if known is not None:
            known = Image.fromarray(known) if isinstance(known, np.ndarray) else known
            known = known.resize((size, size), Image.Resampling.NEAREST)
    out = {"key": key, "gt": np.asarray(gt), "fill": int(meta.get("fill", 0))}
    if known is not None:
        out["known"] = (np.asarray(known) > 127).astype(np.uint8)
    return out


def _stacked(arrays: list[np.ndarray]) -> Tensor:
    """`np.stack` into a tensor; in a loader worker straight into shared memory, which the DataLoader then hands
    to the main process without copying it again (what torch's default_collate does)."""
    shape = (len(arrays), *arrays[0].shape)
    dtype = torch.from_numpy(np.empty(0, arrays[0].dtype)).dtype
    if torch.utils.data.get_worker_info() is None:
        out = torch.empty(shape, dtype=dtype)
    else:
        storage = torch.empty(0, dtype=dtype)._typed_storage()._new_shared(math.prod(shape))
        out = torch.empty(0, dtype=dtype).new(storage).view(shape)
    np.stack(arrays, out=out.numpy())
    return out


def layout(stacked: dict[str, Tensor]) -> dict[str, Tensor]:
    """Stacked per-sample fields -> the batch's tensors: gt (B, 3, H, W) and known (B, 1, H, W), both views."""
    return {"gt": stacked["gt"].permute(0, 3, 1, 2), "known": stacked["known"][:, None], "fill": stacked["fill"]}


def collate(samples: list[dict], corrupt: int, ring: WorkerRing | None = None) -> dict:
    """A list of decoded samples -> a batch; in a loader worker with a `ring`, the pixels go into one of its
    reused shared-memory slots and the batch carries the slot reference (`CountingLoader` lays it out)."""
    batch = {"key": [s["key"] for s in samples], "corrupt": corrupt}
    if ring is not None:
        fields = {
            "gt": [s["gt"] for s in samples],
            "known": [s["known"] for s in samples],
            "fill": [np.array(s["fill"], np.uint8) for s in samples],
        }
        stacked = ring.put(fields)
        return {**batch, **stacked} if RING_KEY in stacked else {**batch, **layout(stacked)}
    stacked = {
        "gt": _stacked([s["gt"] for s in samples]),
        "known": _stacked([s["known"] for s in samples]),
        "fill": torch.tensor([s["fill"] for s in samples], dtype=torch.uint8),
    }
    return {**batch, **layout(stacked)}


class WarningBudget:
    """Warnings of one kind, without flooding the log: the first `first` one by one, then one line with the running
    count every `every_s` seconds at most (a garbage shard drawn again and again fails thousands of times a second).
    Everything is still counted by the caller."""

    def __init__(self, first: int = 10, every_s: float = 10.0) -> None:
        self.first, self.every_s = first, every_s
        self.seen = 0
        self._next_summary = 0.0

    def warn(self, message: str, *args: object) -> None:
        self.seen += 1
        if self.seen <= self.first:
            last = self.seen == self.first
            log.warning(message + (f" (further ones: a line every {self.every_s:.0f} s)" if last else ""), *args)
            return
        now = time.monotonic()
        if now >= self._next_summary:
            self._next_summary = now + self.every_s
            log.warning(message + " (%d such warnings so far in this process)", *args, self.seen)


class CorruptLog:
    """Skipped corrupt samples of one loader: each one is counted and logged (`WarningBudget`); more than `limit`
    stops the run."""

    def __init__(self, message: str, limit: int | None = None) -> None:
        self.message = message  # a logging format with one %s: the CorruptSample
        self.limit = limit
        self.total = 0
        self.warnings = WarningBudget()

    def record(self, err: CorruptSample) -> None:
        self.total += 1
        self.warnings.warn(self.message, err)
        if self.limit is not None and self.total > self.limit:
            raise RuntimeError(f"more than data.max_corrupt={self.limit} corrupt samples; last: {err}") from err


class DataStopped(RuntimeError):
    """The loader was told to stop (`ShardErrors.stop`): ends a stream that would otherwise retry forever."""


class ShardErrors:
    """The webdataset handler for unreadable shards and tar members (truncated or garbage tars): each one is
    counted and logged, and the stream goes on; after `stop()` the next one ends the stream (a train stream over
    only unreadable shards would otherwise draw them again forever)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.count = 0
        self.last = ""
        self.stopped = False
        self.warnings = WarningBudget()

    def __call__(self, exn: Exception) -> bool:
        self.count += 1
        self.last = f"{type(exn).__name__}: {exn}"
        if self.stopped:
            raise DataStopped(f"{self.what} stopped; last error: {self.last}") from exn
        self.warnings.warn("skipping unreadable %s data (%s)", self.what, self.last)
        return True

    def stop(self) -> None:
        self.stopped = True

    def shortfall(self, url: str | None, seen: int, expected: dict[str, int]) -> None:
        """A pass over `url` ended after `seen` samples: count and report the ones missing (a tar truncated at a
        member boundary ends without any error)."""
        missing = expected.get(url, 0) - seen if url is not None else 0
        if missing > 0:
            self.count += missing
            self.last = f"{url} ended after {seen} of {expected[url]} samples (truncated?)"
            self.warnings.warn("unreadable %s data: %s", self.what, self.last)


def count_shortfall(expected: dict[str, int], errors: ShardErrors):
    """A pipeline stage right after the tar reader: passes samples through and compares each pass over a shard
    with the sample count the manifest records for it (`ShardErrors.shortfall`)."""

    def stage(samples: Iterator[dict]) -> Iterator[dict]:
        url, first, seen = None, None, 0
        for sample in samples:
            here, key = sample.get("__url__"), sample.get("__key__")
            if here != url or key == first:  # another shard, or the same shard drawn again
                errors.shortfall(url, seen, expected)
                url, first, seen = here, key, 0
            seen += 1
            yield sample
        errors.shortfall(url, seen, expected)

    return stage


def sample_batches(
    raws: Iterable[dict],
    cfg: DataConfig,
    batch_size: int,
    *,
    mask_rng: Callable[[str], np.random.Generator],
    corrupt: CorruptLog,
    keep_last: bool,
) -> Iterator[list[dict]]:
    """The sample stage shared by train and val: decode, skip corrupt samples (into `corrupt`), give samples
    without a baked mask one drawn from `mask_rng(key)` (called only for those), and group into lists of
    `batch_size`; a last shorter list is yielded only with `keep_last`."""
    batch = []
    for raw in raws:
        try:
            sample = decode(raw, cfg.image_size)
        except CorruptSample as err:
            corrupt.record(err)
            continue
        if "known" not in sample:
            rng = mask_rng(sample["key"])
            sample["known"], sample["fill"] = sample_known_mask(rng, *sample["gt"].shape[:2], cfg.mask)
        batch.append(sample)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch and keep_last:
        yield batch


def _worker_id() -> int:
    info = torch.utils.data.get_worker_info()
    return info.id if info is not None else 0


def train_samples_to_batches(cfg: DataConfig, batch_size: int, seed: int, rank: int, shard_errors: ShardErrors):
    """A pipeline stage (runs in each worker): the sample stage with one mask generator per (seed, rank, worker);
    each batch carries the number of corrupt samples and unreadable shard parts met since the previous one, for
    `CountingLoader`."""

    def stage(samples: Iterator[dict]) -> Iterator[dict]:
        rng = np.random.default_rng([seed, rank, _worker_id()])
        corrupt = CorruptLog("skipping corrupt %s", limit=cfg.max_corrupt)
        in_worker = torch.utils.data.get_worker_info() is not None
        ring = WorkerRing(cfg.shm_slots) if in_worker and cfg.shm_slots > 0 else None
        # what earlier passes reported: without workers, `shard_errors` is the same object in every epoch
        reported = corrupt.total + shard_errors.count
        for batch in sample_batches(samples, cfg, batch_size, mask_rng=lambda _: rng, corrupt=corrupt, keep_last=False):
            yield collate(batch, corrupt.total + shard_errors.count - reported, ring)
            reported = corrupt.total + shard_errors.count

    return stage


class CountingLoader:
    """Epochs of `length` batches cut from ONE endless stream of batches; sums the workers' corrupt-sample counts,
    knows which shards it reads (for messages), and can be told to stop a stream that only meets unreadable shards.

    Why one stream: restarting the pipeline for each epoch restarted its seeded shard draw, shuffle and mask
    generators too, so every epoch repeated the first one batch for batch, and with `batches_per_epoch` set only the
    first few samples were ever seen. Continuing the stream, each epoch takes the batches that follow the last one's:
    new order, new masks, and every sample of every shard is reached."""

    def __init__(self, loader, length: int, urls: list[str], shard_errors: ShardErrors) -> None:
        self.loader = loader  # endless: resampled shards
        self.length = length
        self.urls = urls
        self.shard_errors = shard_errors
        self.corrupt_count = 0
        self._stream: Iterator[dict] | None = None

    def stop(self) -> None:
        self.shard_errors.stop()

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[dict]:
        """One epoch: the next `length` batches of the stream."""
        if self._stream is None:
            self._stream = self._batches()
        for _ in range(self.length):
            try:
                yield next(self._stream)
            except StopIteration:  # a stream stopped on purpose (`stop`)
                self._stream = None
                return

    def _batches(self) -> Iterator[dict]:
        rings = MainRings()  # the workers' shared-memory slots, for as long as the stream lives
        batches = iter(self.loader)
        while True:
            rings.release_unused()  # before waiting: a worker may need a slot the caller has let go of
            try:
                batch = next(batches)
            except StopIteration:
                return
            self.corrupt_count += int(batch.pop("corrupt", 0))
            yield rings.receive(batch, layout)


def make_train_loader(cfg: DataConfig, *, batch_size: int, rank: int, world_size: int, seed: int) -> CountingLoader:
    urls = shard_urls(cfg.root, "train")
    total = sum(s["count"] for s in read_manifest(cfg.root)["shards"] if s["split"] == "train")
    per_epoch = cfg.batches_per_epoch or max(1, total // (batch_size * world_size))
    shard_errors = ShardErrors("train")
    pipeline = wds.DataPipeline(
        wds.ResampledShards(urls, seed=seed * 1_000_003 + rank, deterministic=True),
        tar_to_samples(handler=shard_errors),
        count_shortfall(shard_counts(cfg.root, "train"), shard_errors),
        wds.shuffle(cfg.shuffle_buffer, initial=min(cfg.shuffle_buffer, 64), seed=seed * 7919 + rank),
        train_samples_to_batches(cfg, batch_size, seed, rank, shard_errors),
    )
    loader = wds.WebLoader(pipeline, batch_size=None, num_workers=cfg.num_workers, persistent_workers=False)
    return CountingLoader(loader, per_epoch, urls, shard_errors)


def key_seeded_rng(key: str) -> np.random.Generator:
    """A sample's own generator: its mask is the same on every rank, in every run, whatever was read before it."""
    return np.random.default_rng(list(key.encode()))


class ValLoader:
    """The val split for one rank: samples whose global index % world_size == rank, in shard order, batched.

    Val shards carry baked masks; a sample without one gets a key-seeded mask. Corrupt samples are skipped and
    counted in `corrupt_count` (no limit: validation never stops a run)."""

    def __init__(self, cfg: DataConfig, batch_size: int, rank: int, world_size: int) -> None:
        self.cfg, self.batch_size, self.rank, self.world_size = cfg, batch_size, rank, world_size
        self.urls = shard_urls(cfg.root, "val")
        self.corrupt = CorruptLog("skipping corrupt val %s")
        self.shard_errors = ShardErrors("val")

    @property
    def corrupt_count(self) -> int:
        """Corrupt samples and unreadable shard parts met so far (over all passes)."""
        return self.corrupt.total + self.shard_errors.count

    def __iter__(self) -> Iterator[dict]:
        dataset = wds.DataPipeline(
            wds.SimpleShardList(self.urls),
            tar_to_samples(handler=self.shard_errors),
            count_shortfall(shard_counts(self.cfg.root, "val"), self.shard_errors),
        )
        mine = (raw for index, raw in enumerate(dataset) if index % self.world_size == self.rank)
        batches = sample_batches(
            mine, self.cfg, self.batch_size, mask_rng=key_seeded_rng, corrupt=self.corrupt, keep_last=True
        )
        for batch in batches:
            yield collate(batch, 0)


def make_val_loader(cfg: DataConfig, *, batch_size: int, rank: int, world_size: int) -> ValLoader:
    return ValLoader(cfg, batch_size, rank, world_size)


@functools.cache
def _augmenter(image_size: int, min_crop_scale: float) -> K.AugmentationSequential:
    """Built once per setting, not per step: the modules hold no random state (parameters are drawn from the
    global torch RNG on each call), so reusing them draws and computes exactly what a fresh one would."""
    return K.AugmentationSequential(
        K.RandomHorizontalFlip(p=0.5),
        K.RandomResizedCrop((image_size, image_size), scale=(min_crop_scale, 1.0), p=0.5),
        data_keys=["input", "mask"],
    )


def prepare_batch(
    batch: dict, *, device: torch.device, cfg: DataConfig, train: bool, generator: torch.Generator | None = None
) -> dict[str, Tensor]:
    """CPU batch -> device tensors: `rgb`, `gray`, `input` (B, ., H, W) in [-1, 1], `known_mask` {0, 1}, `key`.

    Augmentation runs on the uint8 image and the mask together; the image is rounded back to uint8 afterwards and
    its gray computed with PIL's exact integer formula, so `gray` is exactly what PIL would give for `rgb`.
    """
    gt = batch["gt"].to(device, non_blocking=True)
    known = batch["known"].to(device, non_blocking=True).float()
    if train and cfg.augment:
        rgb01, known = _augmenter(cfg.image_size, cfg.min_crop_scale)(gt.float() / 255.0, known)
        gt = (rgb01 * 255.0).round().clamp(0, 255).to(torch.uint8)
        known = (known > 0.5).float()
    gray_u8 = rgb_to_gray_u8(gt)  # (B, 1, H, W)
    gray = u8_to_signed(gray_u8)
    fill = u8_to_signed(batch["fill"].to(device)).view(-1, 1, 1, 1)
    return {
        "rgb": u8_to_signed(gt),
        "gray": gray,
        "known_mask": known,
        "input": known * gray + (1.0 - known) * fill,
        "key": batch["key"],
    }
