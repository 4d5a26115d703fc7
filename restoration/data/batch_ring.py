"""Reused shared-memory batch buffers between loader workers and the main process.

Why: a DataLoader worker normally stacks every batch into a freshly allocated shared-memory segment, which the
kernel must allocate, zero and fault in page by page (for 8 x 512 px RGB + masks, ~5 ms of a ~55 ms batch, paid in
the worker, i.e. out of decode time). Here each worker keeps a small ring of segments and writes each batch into a
free one; the main process maps a segment once, when it first arrives, and from then on a batch is only a slot
number plus the small per-sample fields.

Safety: a slot is reused only after the main process has seen that nothing outside this module still refers to
its memory (the storage's use count is back to what the ring itself holds), so a batch a user keeps, or a view of
it, is never overwritten. A worker that finds no free slot and may not add one writes that batch into a fresh
segment, as the DataLoader would have. Only the main process releases slots, at `release_unused`, which the loader
calls each time it is asked for the next batch.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

RING_KEY = "_ring"


def _use_count(tensor: Tensor) -> int | None:
    counter = getattr(torch._C, "_storage_Use_Count", None)  # private; without it slots are simply never reused
    return None if counter is None else int(counter(tensor.untyped_storage()._cdata))


def _shared_empty(shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    return torch.empty(shape, dtype=dtype).share_memory_()


class WorkerRing:
    """Worker side: `put(fields)` stacks each field's per-sample arrays into a free slot (or a fresh segment)."""

    def __init__(self, max_slots: int) -> None:
        self.max_slots = max_slots
        self.token = os.urandom(8).hex()  # workers are re-created each epoch: slots are named by token and index
        self.free = _shared_empty((max(max_slots, 1),), torch.uint8)  # set to 1 by the main process
        self.slots: list[dict[str, Tensor]] = []
        self.sent: set[int] = set()  # slots whose memory the main process has already been sent

    def _take(self, specs: dict[str, tuple[tuple[int, ...], torch.dtype]]) -> int | None:
        for index, slot in enumerate(self.slots):
            if self.free[index] and {name: (tuple(t.shape), t.dtype) for name, t in slot.items()} == specs:
                return index
        if len(self.slots) < self.max_slots:
            self.slots.append({name: _shared_empty(*spec) for name, spec in specs.items()})
            return len(self.slots) - 1
        return None

    def put(self, fields: dict[str, list[np.ndarray]]) -> dict:
        """{name: per-sample arrays} -> {name: stacked tensor} (a fresh segment) or {RING_KEY: slot reference}."""
        specs = {}
        for name, arrays in fields.items():
            dtype = torch.from_numpy(np.empty(0, arrays[0].dtype)).dtype
            specs[name] = ((len(arrays), *arrays[0].shape), dtype)
        index = self._take(specs)
        target = {name: _shared_empty(*spec) for name, spec in specs.items()} if index is None else self.slots[index]
        for name, arrays in fields.items():
            np.stack(arrays, out=target[name].numpy())
        if index is None:  # every slot is still in use in the main process
            return target
        self.free[index] = 0
        ref: dict = {"token": self.token, "slot": index}
        if not self.sent:
            ref["free"] = self.free
        if index not in self.sent:
            ref["tensors"] = target
            self.sent.add(index)
        return {RING_KEY: ref}


class MainRings:
    """Main-process side: turns slot references back into tensors and releases slots nobody uses any more."""

    def __init__(self) -> None:
        self.free: dict[str, Tensor] = {}  # token -> that worker's free flags
        self.slots: dict[tuple[str, int], dict[str, Tensor]] = {}
        self.baseline: dict[tuple[str, int], dict[str, int | None]] = {}  # use counts while nothing else refers
        self.in_use: set[tuple[str, int]] = set()

    def receive(self, batch: dict, layout: Callable[[dict[str, Tensor]], dict[str, Tensor]]) -> dict:
        """A batch from a worker -> the same batch with a slot's fields as tensors laid out by `layout` (views of the
        slot, valid for as long as the caller keeps them). A batch without a slot reference is returned as it is."""
        ref = batch.pop(RING_KEY, None)
        if ref is None:
            return batch
        key = (ref["token"], ref["slot"])
        if "free" in ref:
            self.free[ref["token"]] = ref["free"]
        if "tensors" in ref:
            self.slots[key] = ref["tensors"]
            self.baseline[key] = {name: _use_count(t) for name, t in ref["tensors"].items()}
        self.in_use.add(key)
        return {**batch, **layout({name: t.view(t.shape) for name, t in self.slots[key].items()})}

    def release_unused(self) -> None:
        """Marks free every slot whose memory only the ring itself still refers to."""
        for key in list(self.in_use):
            counts = {name: _use_count(t) for name, t in self.slots[key].items()}
            if None in counts.values() or counts != self.baseline[key]:
                continue
            self.in_use.discard(key)
            self.free[key[0]][key[1]] = 1
