"""Carrying a network's training state across a stage change (`init.carry_state`), not only its weights.

Why: `init.from_weights` starts a stage from earlier weights (the EMA copies of a checkpoint or an export), with
fresh Adam moments and an EMA copy reset to those weights. Joint fine-tuning that starts from a converged two-stage
pipeline then begins with a restart: Adam's first steps are large (bias-corrected from zero moments) and the EMA
forgets its average. With `init.carry_state: true` every network found in a checkpoint continues exactly where that
run left it: its live (non-EMA) weights, its Adam moments and step counts, and its EMA copy. The new stage's own
learning rate, betas and weight decay apply (they are the stage's settings, not state).

Where it comes from: a checkpoint directory (`runs/<name>/checkpoints/step-N`, or a run directory, read at its
latest complete checkpoint) records in `trainer.json` which network and optimizer each of accelerate's numbered
files holds (`prepared`); the live weights are accelerate's `model[_i].safetensors`, the optimizer states its
`optimizer[_i].bin` (loaded with `weights_only=True`), the EMA copies our `ema_<network>.safetensors`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate.utils import OPTIMIZER_NAME, SAFE_MODEL_NAME
from safetensors.torch import load_file
from torch import nn

from restoration.checkpoint import TRAINER_STATE, latest_checkpoint

log = logging.getLogger(__name__)

PREPARED = "prepared"  # trainer.json key: {"networks": [...], "optimizers": [...]} in accelerate's prepare order
_WRAPPERS = ("module.", "_orig_mod.")  # DDP and torch.compile prefixes of a wrapped model's state dict


class CarryError(ValueError):
    """A source that cannot carry training state; the message names the directory and what is missing."""


@dataclass
class CarrySource:
    """One checkpoint directory and the prepare order its numbered files follow."""

    directory: Path
    networks: list[str]
    optimizers: list[str]

    def model_file(self, name: str) -> Path:
        i = self.networks.index(name)
        return self.directory / (f"{SAFE_MODEL_NAME}.safetensors" if i == 0 else f"{SAFE_MODEL_NAME}_{i}.safetensors")

    def optimizer_file(self, name: str) -> Path | None:
        if name not in self.optimizers:
            return None
        i = self.optimizers.index(name)
        return self.directory / (f"{OPTIMIZER_NAME}.bin" if i == 0 else f"{OPTIMIZER_NAME}_{i}.bin")

    def ema_file(self, name: str) -> Path | None:
        path = self.directory / f"ema_{name}.safetensors"
        return path if path.is_file() else None


def checkpoint_dir(path: Path) -> Path:
    """The checkpoint `path` names: itself, or a run directory's latest complete checkpoint."""
    path = Path(path)
    if (path / TRAINER_STATE).is_file():
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise CarryError(
            f"init.carry_state: {path} is not a checkpoint (no {TRAINER_STATE}) nor a run directory with one; "
            "an export (`final/`) holds weights only: point init.from_weights at the run or its "
            "checkpoints/step-N, or set init.carry_state=false to start from the weights alone"
        )
    return latest


def read_source(path: Path) -> CarrySource:
    """The checkpoint at `path` with its prepare order; a checkpoint written before that order was recorded, or one
    missing a file it names, is refused with the file named."""
    directory = checkpoint_dir(path)
    state = json.loads((directory / TRAINER_STATE).read_text())
    order = state.get(PREPARED)
    if not isinstance(order, dict) or not isinstance(order.get("networks"), list):
        raise CarryError(
            f"init.carry_state: {directory / TRAINER_STATE} does not record which network each of its files holds "
            f"(`{PREPARED}`; checkpoints written before init.carry_state existed); set init.carry_state=false to "
            "start from its weights alone"
        )
    source = CarrySource(directory, list(order["networks"]), list(order.get("optimizers", [])))
    for name in source.networks:
        for needed in (source.model_file(name), source.optimizer_file(name)):
            if needed is not None and not needed.is_file():
                raise CarryError(f"init.carry_state: {needed} is missing (network '{name}' of {directory})")
    return source


def _unwrapped(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for prefix in _WRAPPERS:
            while key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def _load(module: nn.Module, path: Path, name: str) -> None:
    try:
        module.load_state_dict(_unwrapped(load_file(str(path), device="cpu")))
    except RuntimeError as err:
        raise CarryError(f"init.carry_state: {path}: does not fit network '{name}' as configured: {err}") from err


def _load_optimizer(optimizer: torch.optim.Optimizer, path: Path, name: str) -> None:
    """Adam's moments and step counts from `path`; the group settings (lr, betas, weight decay) stay this stage's."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    settings = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    try:
        optimizer.load_state_dict(saved)
    except ValueError as err:
        raise CarryError(f"init.carry_state: {path}: does not fit the optimizer of '{name}': {err}") from err
    for group, own in zip(optimizer.param_groups, settings):
        group.update(own)


def carry_state(
    sources: list[Path],
    networks: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    ema: dict[str, nn.Module],
) -> list[str]:
    """Load each network's live weights, optimizer state and EMA copy from the first source that trained it;
    returns the carried names. A network no source holds keeps what `init.from_weights` gave it (or its fresh
    initialisation). Call before `accelerator.prepare` (which moves optimizer states to the device)."""
    read = [read_source(Path(s)) for s in sources]
    carried = []
    for name, module in networks.items():
        source = next((s for s in read if name in s.networks), None)
        if source is None:
            continue
        _load(module, source.model_file(name), name)
        optimizer_file = source.optimizer_file(name)
        if name in optimizers and optimizer_file is not None:
            _load_optimizer(optimizers[name], optimizer_file, name)
        if name in ema:
            ema_file = source.ema_file(name)
            if ema_file is not None:
                _load(ema[name], ema_file, name)
            else:  # the source did not average this network: the average starts at its live weights
                ema[name].load_state_dict(module.state_dict())
        carried.append(name)
        averaged = ", EMA" if name in ema else ""
        log.info("carried %s (weights, optimizer state%s) from %s", name, averaged, source.directory)
    if sources and not carried:
        raise CarryError(f"init.carry_state: none of {[str(s) for s in sources]} trained any of {list(networks)}")
    return carried
