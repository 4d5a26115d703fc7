"""One training per run directory: a lock file that a second training on the same `run.output_dir/run.name` meets.

Two trainings writing one run directory interleave `eval.jsonl`, lose an MLflow run and can mix checkpoints. The
lock is an advisory `flock` on `<run_dir>/LOCK`, held for the life of the training process: the kernel releases
it when the process ends in any way (SIGKILL and crashes included), so a lock file left behind by a dead run is
never stale. The file records host, pid and start time so the refusal can say who holds the directory.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_NAME = "LOCK"


class RunDirInUse(RuntimeError):
    """Another live process holds the run directory."""


class RunLock:
    def __init__(self, fd: int | None, path: Path) -> None:
        self._fd, self.path = fd, path

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def acquire_run_lock(run_dir: Path) -> RunLock:
    """Hold `run_dir` for this process, or raise `RunDirInUse` naming the holder."""
    path = Path(run_dir) / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise RunDirInUse(
            f"{run_dir} is in use by another training ({holder}). Wait for it to end or stop it, or give this run "
            "another run.name or run.output_dir."
        ) from None
    except OSError as err:
        if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
            os.close(fd)
            raise
        log.warning("%s: this filesystem has no file locks; two trainings on one run directory are not refused", path)
        os.close(fd)
        return RunLock(None, path)
    record = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode(), 0)
    return RunLock(fd, path)


def _holder(fd: int) -> str:
    try:
        record = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"host {record['host']}, pid {record['pid']}, since {record['since']}"
    except (OSError, ValueError, KeyError):
        return "holder unknown"
