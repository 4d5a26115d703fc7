"""The shared-memory batch ring: slots are reused only once nothing refers to them, a full ring falls back to fresh
memory, and a real loader with workers gives the batches it gave without the ring, kept batches untouched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from restoration.data.batch_ring import RING_KEY, MainRings, WorkerRing
from restoration.data.shard_build import build_photo_shards
from restoration.data.shards import DataConfig, layout, make_train_loader


def fields(value: int, batch: int = 2, size: int = 4) -> dict[str, list[np.ndarray]]:
    return {
        "gt": [np.full((size, size, 3), value + i, np.uint8) for i in range(batch)],
        "known": [np.full((size, size), i % 2, np.uint8) for i in range(batch)],
        "fill": [np.array(value, np.uint8) for _ in range(batch)],
    }


def send(payload: dict) -> dict:
    """What the DataLoader does to a worker's batch on its way to the main process: pickles it through shared
    memory (here: the same objects, as a worker's tensors arrive as views of the same memory)."""
    return dict(payload)


def test_a_slot_is_reused_only_after_every_view_of_it_is_gone():
    worker, main = WorkerRing(max_slots=2), MainRings()
    first = main.receive(send(worker.put(fields(10))), layout)
    assert first["gt"].shape == (2, 3, 4, 4)
    assert first["known"].shape == (2, 1, 4, 4)
    assert first["gt"][1].eq(11).all()
    assert first["fill"].tolist() == [10, 10]
    view = first["gt"][0, 0]  # a view the caller keeps
    del first
    main.release_unused()
    second = main.receive(send(worker.put(fields(20))), layout)  # slot 0 is held through `view`: slot 1
    assert view.eq(10).all()
    assert second["gt"][0].eq(20).all()
    del view, second
    main.release_unused()
    third = main.receive(send(worker.put(fields(30))), layout)
    assert third["gt"][0].eq(30).all()
    assert len(worker.slots) == 2  # reused, not grown


def test_a_full_ring_falls_back_to_fresh_memory_and_overwrites_nothing():
    worker, main = WorkerRing(max_slots=2), MainRings()
    kept = []
    for value in range(0, 50, 10):
        payload = send(worker.put(fields(value)))
        assert (RING_KEY in payload) == (value < 20)  # the first two fill the ring; the rest are fresh segments
        batch = main.receive(payload, layout) if RING_KEY in payload else {**payload, **layout(payload)}
        kept.append(batch)
        main.release_unused()
    for value, batch in zip(range(0, 50, 10), kept):
        assert batch["gt"][0].eq(value).all()
        assert batch["gt"][1].eq(value + 1).all()


def test_slot_memory_is_sent_once_and_the_flags_with_the_first_batch():
    worker = WorkerRing(max_slots=1)
    first = worker.put(fields(1))[RING_KEY]
    assert "tensors" in first
    assert "free" in first
    main = MainRings()
    main.receive(send({RING_KEY: first}), layout)
    main.release_unused()
    again = worker.put(fields(2))[RING_KEY]
    assert "tensors" not in again
    assert "free" not in again
    assert again["slot"] == 0


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("ring")
    rng = np.random.default_rng(1)
    (base / "photos").mkdir()
    for i in range(24):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(base / "photos" / f"{i}.png")
    build_photo_shards(base / "photos", base / "shards", size=32, val_fraction=0.0, samples_per_shard=6)
    return base / "shards"


def test_a_loader_with_workers_gives_the_batches_it_gave_without_the_ring(shards):
    def batches(slots: int, keep_all: bool) -> list[dict]:
        cfg = DataConfig(root=shards, image_size=32, num_workers=2, shuffle_buffer=8, batches_per_epoch=16,
                         shm_slots=slots)  # fmt: skip
        out, ptrs = [], set()
        for batch in make_train_loader(cfg, batch_size=3, rank=0, world_size=1, seed=3):
            ptrs.add(batch["gt"].data_ptr())
            out.append(batch if keep_all else {k: v.clone() if torch.is_tensor(v) else v for k, v in batch.items()})
        return out, ptrs

    want, _ = batches(0, keep_all=True)
    streamed, ptrs = batches(6, keep_all=False)  # each batch let go of before the next: slots come back
    held, _ = batches(6, keep_all=True)  # every batch kept: the ring must not overwrite any of them
    assert len(ptrs) <= 2 * 6 < len(want)
    for got in (streamed, held):
        assert [b["key"] for b in got] == [b["key"] for b in want]
        for a, b in zip(got, want):
            for name in ("gt", "known", "fill"):
                assert a[name].shape == b[name].shape, name
                assert torch.equal(a[name], b[name]), name
