"""Moving trained weights between stages: export a run's EMA networks, and start a stage from them.

An export directory holds one `<network>.safetensors` per network (EMA weights) and `pipeline.json` (the stage and
the model config sections needed to rebuild the networks). A later stage starts from it (or from a checkpoint
directory, whose `ema_<network>.safetensors` files have the same names) with `init.from_weights`; networks are
matched by name, so `joint` can start from an `inpaint` export plus a `colorize` export.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

log = logging.getLogger(__name__)


@dataclass
class InitConfig:
    """Weights to start from: export or checkpoint directories of earlier runs, searched in order."""

    from_weights: list[Path] = field(default_factory=list)
    strict: bool = True  # every network file found must match its network's keys and shapes exactly


def export_weights(networks: dict[str, nn.Module], out_dir: Path, meta: dict[str, Any]) -> Path:
    """Write each network's state dict as safetensors plus `pipeline.json`; atomic per file."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, module in networks.items():
        state = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
        tmp = out_dir / f".{name}.safetensors.tmp"
        save_file(state, str(tmp))
        tmp.replace(out_dir / f"{name}.safetensors")
    tmp = out_dir / ".pipeline.json.tmp"
    tmp.write_text(json.dumps(meta, indent=2, default=str))
    tmp.replace(out_dir / "pipeline.json")
    return out_dir


def exportable_networks(ema: dict[str, nn.Module], networks: dict[str, nn.Module], unwrap) -> dict[str, nn.Module]:
    """What a stage exports: the EMA copy of each generator, and the trained discriminators as they are (a later
    stage fine-tunes them instead of starting its discriminators from scratch)."""
    return {**{k: unwrap(v) for k, v in networks.items() if k not in ema}, **ema}


def _weights_file(directory: Path, name: str) -> Path | None:
    for candidate in (directory / f"{name}.safetensors", directory / f"ema_{name}.safetensors"):
        if candidate.is_file():
            return candidate
    return None


def load_init_weights(networks: dict[str, nn.Module], sources: list[Path], *, strict: bool) -> list[str]:
    """Load weights into the networks found in `sources` (first match wins); returns the loaded names."""
    loaded = []
    for source in sources:
        source = Path(source)
        if not source.is_dir():
            raise FileNotFoundError(f"init.from_weights: {source} is not a directory (an export or checkpoint dir)")
    for name, module in networks.items():
        for source in sources:
            path = _weights_file(Path(source), name)
            if path is None:
                continue
            state = load_file(str(path), device="cpu")
            try:
                module.load_state_dict(state, strict=strict)
            except RuntimeError as err:
                raise RuntimeError(f"{path}: weights do not fit network '{name}': {err}") from err
            loaded.append(name)
            log.info("initialised %s from %s", name, path)
            break
    if sources and not loaded:
        raise FileNotFoundError(
            f"init.from_weights: none of {[str(s) for s in sources]} holds weights for {list(networks)}"
        )
    return loaded
