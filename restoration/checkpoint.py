"""Crash-safe training checkpoints: written to a temporary directory on all ranks, renamed when complete.

A checkpoint directory `step-00001234/` holds `accelerator.save_state` output (models, optimizers, schedulers,
per-rank RNG states; all loaded back with `weights_only=True` by accelerate), our EMA weights as safetensors, and
`trainer.json` (step, MLflow run id, counters). It is written as `step-00001234.tmp/` and renamed only after every
rank has finished writing, so a directory without the `.tmp` suffix is always whole; `latest_checkpoint` never
returns a partial one. EMA weights are saved by us, not via `register_for_checkpointing`, because accelerate
unpickles custom states with `weights_only=False`.

Failures say what to do: a write that fails (a full disk, most often) removes its `.tmp` directory and raises
`CheckpointWriteError` naming the path, the free space and about how much a checkpoint needs; a newest checkpoint
that cannot be read is skipped for the previous complete one (`load_latest_readable`), with a warning.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from safetensors.torch import load_file, save_file
from torch import nn

log = logging.getLogger(__name__)

TRAINER_STATE = "trainer.json"
_NAME = re.compile(r"^step-(\d{8})$")


def checkpoints_root(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoint directories, oldest first (a `.tmp` directory or one without trainer.json is ignored)."""
    root = checkpoints_root(run_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _NAME.match(p.name) and (p / TRAINER_STATE).is_file()]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))


def latest_checkpoint(run_dir: Path) -> Path | None:
    done = complete_checkpoints(run_dir)
    return done[-1] if done else None


def _ema_state(module: nn.Module) -> dict[str, torch.Tensor]:
    # clone: safetensors refuses tensors that share storage
    return {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


def save_checkpoint(
    accelerator: Accelerator,
    run_dir: Path,
    step: int,
    *,
    ema: dict[str, nn.Module],
    trainer_state: dict[str, Any],
    keep: int,
    plain: dict[str, nn.Module] | None = None,
) -> Path:
    """Save on all ranks (collective); returns the final directory. Keeps the newest `keep` checkpoints.

    `plain`: networks without an EMA copy (the discriminators, unwrapped), also written as `<name>.safetensors`,
    so that a later stage can start from this checkpoint with its discriminators (`init.from_weights`) instead of
    fresh ones; accelerate's own `model_N` files are only meaningful to a resume of this very run.
    """
    root = checkpoints_root(run_dir)
    final = root / f"step-{step:08d}"
    tmp = root / f"step-{step:08d}.tmp"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(tmp))
        if accelerator.is_main_process:
            for name, module in ema.items():
                save_file(_ema_state(module), str(tmp / f"ema_{name}.safetensors"))
            for name, module in (plain or {}).items():
                if name not in ema:
                    save_file(_ema_state(module), str(tmp / f"{name}.safetensors"))
            (tmp / TRAINER_STATE).write_text(json.dumps({**trainer_state, "step": step}, indent=2))
    except (OSError, RuntimeError) as err:  # torch reports a full disk as RuntimeError("... iostream error")
        written = _tree_bytes(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointWriteError(_write_failure(tmp, err, run_dir, written, accelerator, ema)) from err
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        for old in complete_checkpoints(run_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
        for stale in root.glob("step-*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written; the message names the path, the free space and what is needed."""


def _tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) if Path(path).is_dir() else 0


def _state_bytes(accelerator: Accelerator, ema: dict[str, nn.Module]) -> int:
    """About what one checkpoint holds: the weights of every network and EMA copy, and the optimizer states."""
    tensors = [p for m in accelerator._models for p in m.parameters()]
    tensors += [p for m in ema.values() for p in m.parameters()]
    for opt in accelerator._optimizers:
        tensors += [v for state in opt.state_dict()["state"].values() for v in state.values() if torch.is_tensor(v)]
    return sum(t.numel() * t.element_size() for t in tensors)


def _write_failure(
    tmp: Path, err: Exception, run_dir: Path, written: int, accelerator: Accelerator, ema: dict[str, nn.Module]
) -> str:
    done = complete_checkpoints(run_dir)
    needed = _tree_bytes(done[-1]) if done else _state_bytes(accelerator, ema)
    free = shutil.disk_usage(tmp.parent).free if tmp.parent.exists() else 0
    mib = lambda n: f"{n / 2**20:,.0f} MiB"  # noqa: E731
    return (
        f"could not write the checkpoint {tmp} ({type(err).__name__}: {err}). {mib(free)} free on that disk; "
        f"a checkpoint of this run needs about {mib(needed)} ({mib(written)} were written before the failure and "
        f"have been removed). Free space or point run.output_dir at a larger disk; the run resumes from "
        f"{done[-1] if done else 'its start'}."
    )


def load_latest_readable(
    accelerator: Accelerator, run_dir: Path, *, ema: dict[str, nn.Module]
) -> tuple[Path | None, dict[str, Any]]:
    """Load the newest complete checkpoint that every rank can read; an unreadable one is skipped with a warning
    for the one before it. Returns (path, trainer state), or (None, {}) when none is left (a collective)."""
    for path in reversed(complete_checkpoints(run_dir)):
        try:
            state = load_checkpoint(accelerator, path, ema=ema)
            failed = 0.0
        except Exception as err:  # noqa: BLE001 - any damage means: try the previous checkpoint
            log.warning("checkpoint %s is unreadable (%s: %s); trying the previous one", path, type(err).__name__,
                        _first_line(err))  # fmt: skip
            failed, state = 1.0, {}
        flag = torch.tensor([failed], device=accelerator.device)
        if accelerator.num_processes > 1:
            flag = accelerator.reduce(flag, reduction="sum")
        if float(flag.item()) == 0:
            return path, state
    return None, {}


def _first_line(err: Exception, limit: int = 300) -> str:
    """An error in one short line: a state dict that does not fit lists every key in its message (hundreds of
    lines)."""
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[:limit] + " ..."


def load_checkpoint(accelerator: Accelerator, path: Path, *, ema: dict[str, nn.Module]) -> dict[str, Any]:
    """Restore prepared objects, RNG states and EMA weights from `path`; returns the trainer state."""
    path = Path(path)
    state_file = path / TRAINER_STATE
    if not state_file.is_file():
        raise FileNotFoundError(f"{path} is not a complete checkpoint (no {TRAINER_STATE})")
    accelerator.load_state(str(path))
    for name, module in ema.items():
        weights = path / f"ema_{name}.safetensors"
        if not weights.is_file():
            raise FileNotFoundError(f"{weights}: EMA weights for '{name}' missing from the checkpoint")
        module.load_state_dict(load_file(str(weights), device="cpu"))
    return json.loads(state_file.read_text())


# -- one training per run directory: a flock on <run_dir>/LOCK, released by the kernel however the process ends


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
