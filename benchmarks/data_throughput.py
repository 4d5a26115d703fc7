"""Data throughput, as ratios measured side by side: (a) raw PNG decode in a tight loop (the limit), (b) our shard
loader, (c) a PNG-folder Dataset + DataLoader as the original notebook did, with the same number of workers; the
shard build with 1 vs 2 workers; and (`--profile`) where a loader worker's time goes.

    python -m benchmarks.data_throughput --photos ../shared/photos --count 64 --size 512 --workers 1 2 --rounds 3

Photos are resized to `--size` PNGs in a temp dir (never committed) and built into shards once. Every measurement
then runs in its own fresh process; a round runs all of them, in an order that rotates between rounds, so the load
of a shared machine hits each alike; each loader reads the photo set `--passes` times (8: 64 batches, past the
start-up of workers, shuffle buffer and shared-memory slots). Reported: the median over rounds of (b) per worker /
(a) and of (b) / (c), each ratio taken within its round, and the build's speed-up t(1 worker) / t(2 workers).
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from restoration.data.masks import MaskConfig, sample_known_mask
from restoration.data.shard_build import build_photo_shards
from restoration.data.shards import DataConfig, make_train_loader


class PngFolder(torch.utils.data.Dataset):
    def __init__(self, files: list[Path]) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        return torch.from_numpy(np.asarray(Image.open(self.files[i]).convert("RGB"))).permute(2, 0, 1)


# -- one measurement per process -----------------------------------------------------------------------------------


def measure(kind: str, spec: dict) -> float:
    """img/s (decode, shard, folder) or seconds (build)."""
    torch.set_num_threads(1)
    work = Path(spec["work"])
    files = sorted((work / "png").glob("*.png"))
    if kind == "decode":
        blobs = [f.read_bytes() for f in files]
        start = time.perf_counter()
        for _ in range(spec["passes"]):
            for b in blobs:
                np.asarray(Image.open(io.BytesIO(b)).convert("RGB"))
        return spec["passes"] * len(blobs) / (time.perf_counter() - start)
    if kind == "shard":
        cfg = DataConfig(root=work / "shards", image_size=spec["size"], num_workers=spec["workers"],
                         shuffle_buffer=32, batches_per_epoch=spec["passes"] * len(files) // spec["batch"])  # fmt: skip
        it = iter(make_train_loader(cfg, batch_size=spec["batch"], rank=0, world_size=1, seed=0))
    elif kind == "folder":
        loader = torch.utils.data.DataLoader(PngFolder(files * spec["passes"]), batch_size=spec["batch"],
                                             num_workers=spec["workers"], shuffle=True)  # fmt: skip
        it = iter(loader)
    elif kind == "build":
        start = time.perf_counter()
        build_photo_shards(Path(spec["photos"]), work / f"build-{time.time_ns()}", size=spec["size"],
                           val_fraction=0.1, workers=spec["workers"])  # fmt: skip
        return time.perf_counter() - start
    else:
        raise ValueError(kind)
    next(it)  # worker start-up and the first batch are not counted
    start, n = time.perf_counter(), 0
    for batch in it:
        n += (batch["gt"] if isinstance(batch, dict) else batch).shape[0]
    return n / (time.perf_counter() - start)


def run_measure(kind: str, spec: dict) -> float:
    cmd = [sys.executable, "-m", "benchmarks.data_throughput", "--child", kind, json.dumps(spec)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


# -- where a loader worker's time goes -----------------------------------------------------------------------------


def profile(work: Path, size: int, batch: int) -> None:
    """Each stage of the train pipeline on the same samples, one process, ms per sample."""
    import webdataset as wds

    from restoration.data import shards as S
    from restoration.data.tar_reader import tar_samples

    torch.set_num_threads(1)
    cfg = DataConfig(root=work / "shards", image_size=size)
    urls = S.shard_urls(cfg.root, "train")
    timings: dict[str, float] = {}

    def clock(name: str, fn) -> object:
        start = time.perf_counter()
        result = fn()
        timings[name] = (time.perf_counter() - start) * 1e3
        return result

    clock("tar iteration, webdataset stream", lambda: list(wds.tarfile_to_samples()(iter({"url": u} for u in urls))))
    raws = clock(
        "tar iteration, ours (seeking)", lambda: list(tar_samples(({"url": u} for u in urls), wds.reraise_exception))
    )
    n = len(raws)
    clock("shuffle buffer (32)", lambda: list(wds.filters._shuffle(iter(raws), 32, 32, seed=0)))
    clock("per-sample json", lambda: [json.loads(r["json"]) for r in raws])
    blobs = [r["gt.png"] for r in raws]
    clock("raw PNG decode (a)", lambda: [np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in blobs])
    decoded = clock("decode() (gt + json + fill)", lambda: [S.decode(r, size) for r in raws])
    rng = np.random.default_rng(0)
    masks = clock("mask drawing", lambda: [sample_known_mask(rng, size, size, cfg.mask) for _ in range(n)])
    for d, (known, fill) in zip(decoded, masks):
        d["known"], d["fill"] = known, fill
    clock("collate (stack)", lambda: [S.collate(decoded[i : i + batch], 0) for i in range(0, n - batch + 1, batch)])
    stage = S.train_samples_to_batches(cfg, batch, seed=0, rank=0, shard_errors=S.ShardErrors("train"))
    clock("whole worker stage, no workers", lambda: list(stage(iter(raws))))
    print(f"\nper-sample cost of each stage ({n} samples at {size} px, 1 thread):")
    for name, ms in timings.items():
        print(f"  {name:34s} {ms / n:7.2f} ms   {ms / timings['raw PNG decode (a)']:6.1%} of (a)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=Path, required=False)
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--passes", type=int, default=8, help="reads of the photo set per measurement (steady state)")
    ap.add_argument("--profile", action="store_true", help="also break a worker's time down by stage")
    ap.add_argument("--no-build", action="store_true", help="skip the shard-build scaling measurement")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    ns = ap.parse_args(argv)
    if ns.child:
        print(measure(ns.child[0], json.loads(ns.child[1])))
        return 0
    if ns.photos is None:
        ap.error("--photos is required")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "png").mkdir()
        sources = sorted(ns.photos.glob("*.jpg"))[: ns.count]
        for i, path in enumerate(sources):
            img = Image.open(path).convert("RGB").resize((ns.size, ns.size))
            img.save(work / "png" / f"img_{i:04d}.png", compress_level=1)
        build_photo_shards(work / "png", work / "shards", size=ns.size, val_fraction=0.0, samples_per_shard=16)
        if ns.profile:
            profile(work, ns.size, ns.batch)
        base = {
            "work": str(work),
            "size": ns.size,
            "batch": ns.batch,
            "passes": ns.passes,
            "photos": str(ns.photos.resolve()),
        }
        plan = [("decode", {})] + [(k, {"workers": w}) for w in ns.workers for k in ("shard", "folder")]
        if not ns.no_build:
            plan += [("build", {"workers": 1}), ("build", {"workers": 2})]
        rows: list[dict] = []
        for r in range(ns.rounds):
            order = plan[r % len(plan) :] + plan[: r % len(plan)]
            got = {}
            for kind, extra in order:
                got[(kind, extra.get("workers"))] = run_measure(kind, {**base, **extra})
            rows.append({f"{k}{'' if w is None else f'_w{w}'}": v for (k, w), v in got.items()})
            print(f"round {r + 1}: " + "  ".join(f"{k} {v:.1f}" for k, v in rows[-1].items()), flush=True)
    med = lambda xs: float(np.median(xs))  # noqa: E731
    print(f"\n{ns.rounds} rounds, {len(sources)} photos at {ns.size} px, batch {ns.batch}; torch {torch.__version__}")
    print(f"(a) raw PNG decode, 1 core: {med([r['decode'] for r in rows]):.1f} img/s (median)")
    for w in ns.workers:
        per_worker = [r[f"shard_w{w}"] / w / r["decode"] for r in rows]
        vs_folder = [r[f"shard_w{w}"] / r[f"folder_w{w}"] for r in rows]
        print(f"workers={w}: (b) shard loader {med([r[f'shard_w{w}'] for r in rows]):.1f} img/s, (c) PNG folder "
              f"{med([r[f'folder_w{w}'] for r in rows]):.1f} img/s; (b) per worker / (a) = {med(per_worker):.0%} "
              f"[{', '.join(f'{x:.0%}' for x in per_worker)}]; (b) / (c) = {med(vs_folder):.2f} "
              f"[{', '.join(f'{x:.2f}' for x in vs_folder)}]")  # fmt: skip
    if not ns.no_build:
        speedups = [r["build_w1"] / r["build_w2"] for r in rows]
        print(f"shard build from the JPEGs: 1 worker {med([r['build_w1'] for r in rows]):.1f} s, 2 workers "
              f"{med([r['build_w2'] for r in rows]):.1f} s: speed-up {med(speedups):.2f}x "
              f"[{', '.join(f'{x:.2f}' for x in speedups)}]")  # fmt: skip
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(200):
        sample_known_mask(rng, ns.size, ns.size, MaskConfig())
    print(f"mask generation: {200 / (time.perf_counter() - start):.0f} masks/s on one core at {ns.size} px")
    return 0


if __name__ == "__main__":
    sys.exit(main())
