"""Crash-safe training checkpoints: written to a temporary directory on all ranks, renamed when complete.

A checkpoint directory `step-00001234/` holds `accelerator.save_state` output (models, optimizers, schedulers,
per-rank RNG states; all loaded back with `weights_only=True` by accelerate), our EMA weights as safetensors, and
`trainer.json` (step, MLflow run id, counters). It is written as `step-00001234.tmp/` and renamed only after every
rank has finished writing, so a directory without the `.tmp` suffix is always whole; `latest_checkpoint` never
returns a partial one. EMA weights are saved by us, not via `register_for_checkpointing`, because accelerate
unpickles custom states with `weights_only=False`.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from safetensors.torch import load_file, save_file
from torch import nn

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
    accelerator.save_state(str(tmp))
    if accelerator.is_main_process:
        for name, module in ema.items():
            save_file(_ema_state(module), str(tmp / f"ema_{name}.safetensors"))
        for name, module in (plain or {}).items():
            if name not in ema:
                save_file(_ema_state(module), str(tmp / f"{name}.safetensors"))
        (tmp / TRAINER_STATE).write_text(json.dumps({**trainer_state, "step": step}, indent=2))
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
