"""Graceful stop on SIGTERM / SIGUSR1 (SLURM preemption or time limit) / SIGINT (Ctrl-C): agree, save, exit.

A signal only sets a flag; ranks agree on it with one all-reduce at the step boundary so that every rank saves
the same step (a rank that stopped alone would hang the others in the next collective). The trainer then saves a
checkpoint and exits with `REQUEUE_EXIT_CODE`; it also writes `run_dir/REQUEUE` because a launcher
(torchrun / accelerate launch) reports a child failure with its own code, so `launch/slurm/train.sbatch` checks
both. A second SIGINT stops at once (KeyboardInterrupt), for a user who does not want to wait for the save.
"""

from __future__ import annotations

import signal
from types import FrameType

import torch
from accelerate import Accelerator

REQUEUE_EXIT_CODE = 75  # EX_TEMPFAIL: "try again later"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


class PreemptionFlag:
    """Records that a stop signal arrived; `agreed` all-reduces it across ranks."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous = {}

    def install(self) -> PreemptionFlag:
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and self.signal_name == "SIGINT":
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    @property
    def requested(self) -> bool:
        """A stop signal arrived in this process (no collective; for waits that must end early)."""
        return self.signal_name is not None

    def agreed(self, accelerator: Accelerator) -> bool:
        """True on every rank if any rank received a stop signal (a collective: call it on all ranks)."""
        local = torch.tensor([1.0 if self.signal_name else 0.0], device=accelerator.device)
        if accelerator.num_processes > 1:
            local = accelerator.reduce(local, reduction="sum")
        return bool(local.item() > 0)
