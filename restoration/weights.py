"""The exported-weights directory: its layout, how it is written, found, and turned back into networks.

A weights directory holds one `<network>.safetensors` per network and the config sections that rebuild them:
- a stage export (`runs/<name>/final/`): EMA generators + trained discriminators, and `pipeline.json` (the stage,
  the image size, the model config sections and, once measured, the best `inference` modes);
- a checkpoint (`runs/<name>/checkpoints/step-N/`): EMA files named `ema_<network>.safetensors` (discriminators as
  `<network>.safetensors`), config from the run's `config.yaml`;
- a run directory (its `final/`, else its latest complete checkpoint) or a saved MLflow model (its
  `artifacts/pipeline/`).
A training stage starts from such directories (`init.from_weights`, networks matched by name, so `joint` can start
from an `inpaint` export plus a `colorize` export); prediction, evaluation and the MLflow model load from them.
Networks are rebuilt from the stored config sections, never from pretrained files (those may not exist where the
model is used).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from restoration.checkpoint import TRAINER_STATE, latest_checkpoint
from restoration.config import from_dict
from restoration.inference import InferenceSettings
from restoration.models.baseline import BaselineConfig, BaselineGenerator
from restoration.models.colorizer import ColorizerConfig, build_colorizer
from restoration.models.detector import DetectorConfig, build_detector
from restoration.models.discriminators import PatchDiscriminator, PatchDiscriminatorConfig, build_patch_discriminator
from restoration.models.mat import MATConfig, build_discriminator, build_generator
from restoration.models.unet import encoder_name_problem

log = logging.getLogger(__name__)

Role = Literal[
    "inpainter", "colorizer", "restorer", "mask_detector", "inpainter_critic", "colorizer_critic", "restorer_critic"
]
OptimizerGroup = Literal["generator", "discriminator"]
RESTORING_ROLES: tuple[Role, ...] = ("inpainter", "colorizer", "restorer")  # a pipeline needs one of these


@dataclass(frozen=True)
class NetworkSpec:
    """One network of the system: its file/checkpoint name, what it does in the pipeline (`role`), the config
    section that builds it, and which learning rate trains it. Stages name their networks; everything else (the
    trainer, the pipeline, the MLflow model, the shared stage parts) goes through the role."""

    name: str
    role: Role
    section: str
    config: type
    build: Callable[[Any], nn.Module]
    optimizer: OptimizerGroup
    inference: bool  # part of an inference pipeline (exported to the MLflow model); critics are not


# inference networks first, in the order the pipeline looks them up
NETWORK_TABLE: tuple[NetworkSpec, ...] = (
    NetworkSpec("mat_G", "inpainter", "mat", MATConfig, build_generator, "generator", True),
    NetworkSpec("color_G", "colorizer", "colorizer", ColorizerConfig, build_colorizer, "generator", True),
    NetworkSpec("baseline_G", "restorer", "baseline", BaselineConfig, BaselineGenerator, "generator", True),
    NetworkSpec("detector", "mask_detector", "detector", DetectorConfig, build_detector, "generator", True),
    NetworkSpec("mat_D", "inpainter_critic", "mat", MATConfig, build_discriminator, "discriminator", False),
    NetworkSpec(
        "color_D", "colorizer_critic", "color_disc", PatchDiscriminatorConfig, build_patch_discriminator,
        "discriminator", False,
    ),
    NetworkSpec(
        "baseline_D", "restorer_critic", "baseline", BaselineConfig, lambda cfg: PatchDiscriminator(cfg.disc),
        "discriminator", False,
    ),
)  # fmt: skip
INFERENCE_NETWORKS = tuple(spec for spec in NETWORK_TABLE if spec.inference)
MODEL_SECTIONS = ("mat", "colorizer", "color_disc", "detector", "baseline")  # what pipeline.json stores
# written by the trainer beside an export's weights, read by the model card
SETTINGS_TABLE_FILE = "inference_settings.json"  # every candidate inference setting's val scores and the chosen one
VAL_ANCHORS_FILE = "val_anchors.json"  # the classical anchors scored on the val images the model is scored on


def network_spec(name: str) -> NetworkSpec:
    """The table's row of a network name; an unknown name is a programming error, said plainly."""
    for spec in NETWORK_TABLE:
        if spec.name == name:
            return spec
    raise ValueError(f"unknown network {name!r}: expected one of {', '.join(s.name for s in NETWORK_TABLE)}")


def build_networks(cfg: Any, names: tuple[str, ...]) -> dict[str, nn.Module]:
    """Freshly initialised networks, each built from its config section of `cfg` (a `TrainConfig`)."""
    return {name: network_spec(name).build(getattr(cfg, network_spec(name).section)) for name in names}


def by_role(networks: dict[str, nn.Module]) -> dict[Role, nn.Module]:
    """The inference networks among `networks` (named), keyed by their role in the pipeline."""
    return {network_spec(n).role: net for n, net in networks.items() if network_spec(n).inference}


class ModelSourceError(ValueError):
    """A directory that is not a usable weights directory; the message names it and says what was expected."""


@dataclass
class InitConfig:
    """Weights to start from: export or checkpoint directories of earlier runs, searched in order."""

    from_weights: list[Path] = field(default_factory=list)
    strict: bool = True  # every network file found must match its network's keys and shapes exactly
    # also each network's live weights, Adam state and EMA copy, from checkpoints (`restoration.carry`): a stage change
    # that continues training instead of restarting it
    carry_state: bool = False


# -- writing ------------------------------------------------------------------------------------------------------


def export_weights(
    networks: dict[str, nn.Module], out_dir: Path, meta: dict[str, Any], *, inference: dict[str, Any] | None = None
) -> Path:
    """Write each network's state dict as safetensors plus `pipeline.json` (with the `inference` settings chosen for
    this model, when given); atomic per file."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, module in networks.items():
        state = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
        tmp = out_dir / f".{name}.safetensors.tmp"
        save_file(state, str(tmp))
        tmp.replace(out_dir / f"{name}.safetensors")
    write_meta(out_dir, {**meta, "inference": inference} if inference else meta)
    return out_dir


def write_meta(directory: Path, meta: dict[str, Any]) -> Path:
    """`pipeline.json`, replaced whole: the one writer of that file."""
    path = Path(directory) / "pipeline.json"
    tmp = path.with_name(".pipeline.json.tmp")
    tmp.write_text(json.dumps(meta, indent=2, default=str))
    tmp.replace(path)
    return path


def record_inference(directory: Path, **settings: str | float) -> dict[str, Any]:
    """Record inference defaults (`inpaint_mode`, `color_mode`, `chroma_scale`: what scored best for this model) in the
    `inference` field of a directory's `pipeline.json`, which `pipeline.load_pipeline` reads; atomic."""
    path = Path(directory) / "pipeline.json"
    meta = json.loads(path.read_text())
    meta["inference"] = {**(meta.get("inference") or {}), **settings}
    write_meta(directory, meta)
    return meta["inference"]


def exportable_networks(
    ema: dict[str, nn.Module], networks: dict[str, nn.Module], unwrap: Callable[[nn.Module], nn.Module]
) -> dict[str, nn.Module]:
    """What a stage exports: the EMA copy of each generator, and the trained discriminators as they are (a later
    stage fine-tunes them instead of starting its discriminators from scratch)."""
    return {**{k: unwrap(v) for k, v in networks.items() if k not in ema}, **ema}


# -- finding ------------------------------------------------------------------------------------------------------


@dataclass
class WeightsSource:
    """One directory of network weights plus the config sections (`meta`) that rebuild the networks."""

    directory: Path
    meta: dict[str, Any]
    origin: Path | None = None  # the file `meta` was read from (pipeline.json, a run's config.yaml), for messages

    def file(self, network: str) -> Path | None:
        """The network's weights: `<network>.safetensors`, else a checkpoint's EMA `ema_<network>.safetensors`."""
        for candidate in (self.directory / f"{network}.safetensors", self.directory / f"ema_{network}.safetensors"):
            if candidate.is_file():
                return candidate
        return None


def _meta_from_run_config(config_yaml: Path) -> dict[str, Any]:
    """The model sections of a run's `config.yaml` (missing sections fall back to the defaults when built)."""
    try:
        raw = yaml.safe_load(config_yaml.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ModelSourceError(f"{config_yaml}: cannot read the run config ({err})") from err
    meta = {s: raw.get(s) or {} for s in MODEL_SECTIONS}
    meta["stage"] = raw.get("stage", "unknown")
    meta["image_size"] = (raw.get("data") or {}).get("image_size")
    return meta


def resolve_source(path: str | Path) -> WeightsSource:
    """A weights directory from anything a user may point `--model` at (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise ModelSourceError(f"{path}: no such directory")
    if not path.is_dir():
        raise ModelSourceError(f"{path}: expected a directory (a run, its final/ export or a checkpoint), got a file")
    if (path / "MLmodel").is_file():
        return resolve_source(path / "artifacts" / "pipeline")
    if (path / "pipeline.json").is_file():
        try:
            meta = json.loads((path / "pipeline.json").read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ModelSourceError(f"{path / 'pipeline.json'}: unreadable ({err})") from err
        return WeightsSource(path, meta, path / "pipeline.json")
    if (path / TRAINER_STATE).is_file():  # runs/<name>/checkpoints/step-N
        run_config = path.parent.parent / "config.yaml"
        if not run_config.is_file():
            raise ModelSourceError(f"{path}: a checkpoint, but its run has no config.yaml at {run_config}")
        return WeightsSource(path, _meta_from_run_config(run_config), run_config)
    if (path / "config.yaml").is_file():  # a run directory
        if (path / "final" / "pipeline.json").is_file():
            return resolve_source(path / "final")
        checkpoint = latest_checkpoint(path)
        if checkpoint is not None:
            return resolve_source(checkpoint)
        raise ModelSourceError(f"{path}: a run directory without a final/ export or a complete checkpoint")
    raise ModelSourceError(
        f"{path}: not a model directory (expected pipeline.json, a checkpoint's {TRAINER_STATE}, a run's "
        "config.yaml or an MLflow model's MLmodel)"
    )


# -- loading ------------------------------------------------------------------------------------------------------


def recorded_settings(sources: list[WeightsSource]) -> InferenceSettings:
    """The inference defaults a chain of sources records (`pipeline.json` `inference`, first per key), else
    `InferenceSettings()`."""
    return InferenceSettings.from_recorded([s.meta.get("inference") or {} for s in sources])


def _no_pretrained(cfg: Any) -> Any:
    """Weights come from the safetensors file; pretrained/initial weight paths of training are irrelevant."""
    for name in ("weights", "pretrained"):
        if hasattr(cfg, name):
            cfg = dataclasses.replace(cfg, **{name: None})
    return cfg


def build_network(network: str, meta: dict[str, Any], origin: str | Path = "pipeline.json") -> nn.Module:
    """An inference network with random weights, rebuilt from the config section stored in `meta` (read from
    `origin`, named in errors). Never fetches anything: an encoder name that timm would download (`hf-hub:...`, a
    URL) or does not know is refused with a ModelSourceError naming the file and the field, before timm sees it."""
    spec = network_spec(network)
    cfg = _no_pretrained(from_dict(spec.config, meta.get(spec.section), f"{origin} {spec.section}"))
    encoder = getattr(cfg, "encoder", None)
    problem = encoder_name_problem(encoder) if encoder is not None else None
    if problem:
        raise ModelSourceError(f"{origin}: {spec.section}.encoder: {problem} (a tampered or foreign model?)")
    return spec.build(cfg)


def load_weights_into(module: nn.Module, path: Path, network: str, *, strict: bool = True) -> None:
    """Load a safetensors file into `module`; a mismatch names the file and the network."""
    try:
        module.load_state_dict(load_file(str(path), device="cpu"), strict=strict)
    except RuntimeError as err:
        raise ModelSourceError(f"{path}: weights do not fit network '{network}' as configured: {err}") from err


def load_init_weights(networks: dict[str, nn.Module], sources: list[Path], *, strict: bool) -> list[str]:
    """Load weights into the networks found in `sources` (first match wins); returns the loaded names."""
    for source in sources:
        if not Path(source).is_dir():
            raise FileNotFoundError(f"init.from_weights: {source} is not a directory (an export or checkpoint dir)")
    found = [WeightsSource(Path(s), {}) for s in sources]
    loaded = []
    for name, module in networks.items():
        path = next((p for p in (s.file(name) for s in found) if p is not None), None)
        if path is None:
            continue
        load_weights_into(module, path, name, strict=strict)
        loaded.append(name)
        log.info("initialised %s from %s", name, path)
    if sources and not loaded:
        raise FileNotFoundError(
            f"init.from_weights: none of {[str(s) for s in sources]} holds weights for {list(networks)}"
        )
    return loaded
