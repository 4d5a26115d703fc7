"""Waiting for the next training batch without ever waiting forever.

A data stream can stall: a shard directory whose only train shard is garbage makes webdataset draw it again and
again, warning each time, and the trainer sits at its step forever, deaf to SIGTERM because the stop flag is only
read between steps. `GuardedBatches` fetches each batch in a helper thread, one at a time and only when asked (so
the helper never draws random numbers while the training step does: runs stay reproducible), while the caller
polls: a stop request ends the wait within `poll_s`, and no batch for `stall_timeout_s` ends it with a message
naming the shards.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any


class DataStall(RuntimeError):
    """No batch arrived in time; the message names the shards and the last error seen on them."""


class StopRequested(Exception):
    """A stop signal arrived while the trainer waited for data."""


class GuardedBatches:
    def __init__(
        self,
        batches: Iterator[Any],
        *,
        stall_timeout_s: float,
        should_stop: Callable[[], bool],
        describe: Callable[[], str],
        on_stall: Callable[[], None] = lambda: None,
        poll_s: float = 0.2,
    ) -> None:
        """`describe()` says where the data comes from (for the stall message); `on_stall()` is called before
        raising `DataStall` so the stream can be told to give up (its helper thread then ends)."""
        self._batches = batches
        self.stall_timeout_s = stall_timeout_s
        self._should_stop = should_stop
        self._describe = describe
        self._on_stall = on_stall
        self._poll_s = poll_s
        self._requests: queue.Queue[None] = queue.Queue()
        self._results: queue.Queue[tuple[bool, Any]] = queue.Queue()
        self._waiting = False  # a request is out whose result has not been taken yet
        threading.Thread(target=self._serve, name="batch-fetcher", daemon=True).start()

    def _serve(self) -> None:
        while True:
            self._requests.get()
            try:
                self._results.put((True, next(self._batches)))
            except BaseException as err:  # noqa: BLE001 - handed to the caller, which re-raises it
                self._results.put((False, err))
                return

    def __iter__(self) -> GuardedBatches:
        return self

    def __next__(self) -> Any:
        if not self._waiting:  # after a StopRequested the earlier request is still being served: wait for it
            self._requests.put(None)
            self._waiting = True
        start = time.monotonic()
        while True:
            try:
                ok, value = self._results.get(timeout=self._poll_s)
            except queue.Empty:
                if self._should_stop():
                    raise StopRequested from None
                waited = time.monotonic() - start
                if waited > self.stall_timeout_s:
                    self._on_stall()
                    raise DataStall(
                        f"no training batch for {waited:.0f} s (data.stall_timeout_s={self.stall_timeout_s:g}) "
                        f"from {self._describe()}. Check that these shards are readable (the warnings above say "
                        "what failed), rebuild them with restoration-shards, or raise data.stall_timeout_s if "
                        "the storage is just slow."
                    ) from None
                continue
            self._waiting = False
            if not ok:
                raise value
            return value
