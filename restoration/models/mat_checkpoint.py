"""Official MAT checkpoints, read without executing any of their code, and loaded into our networks.

The released `.pkl` files are StyleGAN2-ADA network pickles: every module pickles as a call to the persistence hook
`_reconstruct_persistent_obj` of `torch_utils.persistence`, whose argument carries the *source code* of the network,
which the official loader `exec`s. We never do: a restricted unpickler resolves only an allow-list of
globals (tensor rebuilding, OrderedDict, a few torch module classes and numpy scalars), maps the persistence hook
to an inert record of the instance state, and refuses everything else with an error naming the global. The
parameters are then read out of the recorded module trees (G, G_ema and D: fine-tuning wants the pretrained
discriminator too) and written as one safetensors file with `G.`, `G_ema.` and `D.` key prefixes, plus a JSON of
the constructor arguments. G-only `.pth` state dicts (official key names, possibly without `noise_*` keys) are
loaded with `weights_only=True` and exported as `G_ema`.

This module is also where official weights meet our networks (`restoration.models.mat` is the architecture only):
the released constructors (`build_official_generator`/`_discriminator`, used by the golden-fixture parity check),
the key conversion, and `load_mat_weights`, which loads `MATConfig.weights` into freshly built networks.

`restoration-convert-mat SRC OUT.safetensors` (`restoration.convert_mat`) is the command line of `convert`.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from restoration.models.mat import Discriminator, Generator, MATArch, MATConfig

NETWORKS = ("G", "G_ema", "D")


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle references a global that is not on the allow-list; nothing was executed."""


class PersistentRecord:
    """Stands in for a persistent MAT/StyleGAN class: keeps the class name and the instance state, runs nothing."""

    def __init__(self, meta: dict) -> None:
        if not isinstance(meta, dict) or meta.get("type") != "class":
            raise UnsafePickleError("persistent object of an unexpected kind")
        self.class_name = meta.get("class_name")
        self.state = meta.get("state") or {}


class _InertModule:
    """torch.nn container classes (ModuleList, Sequential, ...) are rebuilt as plain records of their __dict__."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)


def _load_storage_bytes(data: bytes) -> Any:
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


_ALLOWED = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage_bytes,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): PersistentRecord,
    ("dnnlib.util", "EasyDict"): dict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
}
_STORAGES = {"FloatStorage", "DoubleStorage", "HalfStorage", "BFloat16Storage", "LongStorage", "IntStorage"}
_INERT_TORCH_MODULES = {"ModuleList", "Sequential", "ModuleDict", "AdaptiveAvgPool2d", "Softmax", "GELU", "LayerNorm"}


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGES:
            return getattr(torch, name)
        if module.startswith("torch.nn.modules") and name in _INERT_TORCH_MODULES:
            return _InertModule
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "scalar":
            import numpy

            return numpy._core.multiarray.scalar if hasattr(numpy, "_core") else numpy.core.multiarray.scalar
        if module == "numpy" and name == "dtype":
            import numpy

            return numpy.dtype
        raise UnsafePickleError(f"refusing to load global {module}.{name}: not on the allow-list (nothing was run)")


def _tensors(node: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Parameters and persistent buffers of a recorded module tree, in state_dict order."""
    if isinstance(node, PersistentRecord):
        state = node.state
    elif isinstance(node, _InertModule) or hasattr(node, "__dict__"):
        state = node.__dict__
    else:
        raise UnsafePickleError(f"unexpected object {type(node).__name__} in the module tree at {prefix!r}")
    out: dict[str, torch.Tensor] = {}
    skip = set(state.get("_non_persistent_buffers_set", ()))
    for name, value in (state.get("_parameters") or {}).items():
        if value is not None:
            out[prefix + name] = value.detach().clone()
    for name, value in (state.get("_buffers") or {}).items():
        if value is not None and name not in skip:
            out[prefix + name] = value.detach().clone()
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            out.update(_tensors(child, f"{prefix}{name}."))
    return out


def read_official_pickle(path: Path) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """Safely read a MAT network pickle: ({G, G_ema, D: state dicts}, {network: constructor kwargs})."""
    with open(path, "rb") as fh:
        try:
            data = RestrictedUnpickler(fh).load()
        except UnsafePickleError:
            raise
        except (EOFError, pickle.UnpicklingError) as err:
            raise ValueError(f"{path}: not a complete pickle ({err}); was the download truncated?") from err
    if not isinstance(data, dict) or not any(k in data for k in NETWORKS):
        raise ValueError(f"{path}: not a MAT network pickle (expected a dict with G, G_ema and D)")
    states, kwargs = {}, {}
    for name in NETWORKS:
        if name in data and data[name] is not None:
            states[name] = _tensors(data[name])
            if isinstance(data[name], PersistentRecord):
                init = data[name].state.get("_init_kwargs") or {}
                kwargs[name] = {k: v for k, v in dict(init).items() if isinstance(v, int | float | str | bool)}
    return states, kwargs


def read_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """A G-only `.pth`/`.pt` state dict (official key names), loaded with weights_only=True.

    A file that holds anything but tensors and plain containers is refused with our own message: PyTorch's would
    suggest retrying with `weights_only=False`, which would run whatever code the file carries."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()
        detail = next(
            (line for line in first if "Unsupported global" in line or "GLOBAL" in line), first[0] if first else ""
        )
        raise UnsafePickleError(
            f"{path}: refused: it holds objects other than tensors ({detail.strip()}), and loading them would run "
            "code from the file. Only plain state dicts of tensors (.pth/.pt) and the official MAT network pickles "
            "(.pkl, read without running their code) are accepted."
        ) from None
    except (RuntimeError, EOFError) as err:
        raise ValueError(f"{path}: not a readable PyTorch state dict ({type(err).__name__}: {err})") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict of tensors")
    return dict(state)


def infer_resolution(state: dict[str, torch.Tensor]) -> int:
    blocks = [k for k in state if k.startswith("synthesis.dec.Dec_") or k.startswith("Dis.")]
    sizes = [int(k.split("Dec_")[1].split("x")[0]) for k in blocks if "Dec_" in k]
    return max(sizes) if sizes else 512


def convert(src: Path, out: Path) -> dict[str, Any]:
    """Write `out` (safetensors, keys prefixed by network) and `out.json` (constructor args); returns the JSON."""
    src, out = Path(src), Path(out)
    if not src.is_file():
        raise FileNotFoundError(f"{src}: no such file")
    if not zipfile.is_zipfile(src):  # by content, not by name: a renamed .pth is still a PyTorch zip file
        states, kwargs = read_official_pickle(src)
    else:
        states, kwargs = {"G_ema": read_state_dict_file(src)}, {}
    flat = {f"{net}.{k}": v.contiguous() for net, state in states.items() for k, v in state.items()}
    res = infer_resolution(states.get("G_ema") or states.get("G") or {})
    meta = {
        "source": src.name,
        "networks": sorted(states),
        "img_resolution": res,
        "constructor_kwargs": kwargs or {"G_ema": {"z_dim": 512, "c_dim": 0, "w_dim": 512, "img_resolution": res}},
    }
    tmp = out.with_name(out.name + ".tmp")
    save_file(flat, str(tmp), metadata={"restoration": json.dumps(meta)})
    tmp.replace(out)
    Path(str(out) + ".json").write_text(json.dumps(meta, indent=2))
    return meta


def _open_converted(path: Path):
    """The converted weights file, or an error that says how to make one from an official checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: converted MAT weights not found (run restoration-convert-mat first)")
    try:
        return safe_open(str(path), framework="pt")
    except Exception as err:  # noqa: BLE001 - safetensors raises its own SafetensorError for any bad header
        raise ValueError(
            f"{path}: not a converted MAT weights file (safetensors: {err}). Official checkpoints (.pkl/.pth) are "
            f"converted once, without running their code: restoration-convert-mat {path} MAT.safetensors, then "
            "mat.weights=MAT.safetensors"
        ) from None


def has_network(path: Path, network: str) -> bool:
    with _open_converted(path) as fh:
        return any(k.startswith(network + ".") for k in fh.keys())  # noqa: SIM118 - safe_open has no __iter__


def load_converted(path: Path, network: str = "G_ema") -> dict[str, torch.Tensor]:
    """One network's state dict from a converted file (falls back from G_ema to G and back)."""
    path = Path(path)
    with _open_converted(path) as fh:
        keys = list(fh.keys())
        for name in (network, {"G_ema": "G", "G": "G_ema"}.get(network, network)):
            prefix = name + "."
            chosen = [k for k in keys if k.startswith(prefix)]
            if chosen:
                return {k[len(prefix) :]: fh.get_tensor(k) for k in chosen}
    raise KeyError(f"{path}: no {network} weights inside (found prefixes {sorted({k.split('.')[0] for k in keys})})")


def build_official_generator(
    z_dim: int = 512, c_dim: int = 0, w_dim: int = 512, img_resolution: int = 512, img_channels: int = 3
) -> Generator:
    """The released architecture (`Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=512|256, ...)`)."""
    if c_dim != 0:
        raise ValueError("MAT's released models are unconditional (c_dim=0)")
    arch = MATArch(img_resolution=img_resolution, img_channels=img_channels, z_dim=z_dim, w_dim=w_dim)
    return Generator(arch)


def build_official_discriminator(
    c_dim: int = 0, img_resolution: int = 512, img_channels: int = 3, mbstd_group_size: int = 8, **_: Any
) -> Discriminator:
    """The released discriminator (extra official arguments such as channel_base are accepted and, as in MAT,
    do not change the widths)."""
    if c_dim != 0:
        raise ValueError("MAT's released models are unconditional (c_dim=0)")
    arch = MATArch(img_resolution=img_resolution, img_channels=img_channels, mbstd_group_size=mbstd_group_size)
    return Discriminator(arch)


def convert_official_state_dict(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Official key names -> ours: the same, minus the shifted-window `attn_mask` buffers (recomputed, never read).

    Works for G and D, with or without a `module.`/`model.` prefix; differentiable (only renames).
    """
    out = {}
    for key, value in state_dict.items():
        for prefix in ("module.", "model."):
            if key.startswith(prefix):
                key = key[len(prefix) :]
        if key.endswith(".attn_mask"):
            continue
        out[key] = value
    return out


def load_state_flexible(module: nn.Module, state: dict[str, Tensor]) -> list[str]:
    """Strict load, except that missing `noise_const`/`noise_strength` keys (G-only exports made without noise
    inputs) and a missing `synthesis.prior_gain` (the fill prior's gain, which no official checkpoint has) keep their
    initial values and are reported."""
    state = convert_official_state_dict(state)
    missing, unexpected = module.load_state_dict(state, strict=False)
    tolerated = [k for k in missing if k.endswith(("noise_const", "noise_strength")) or k == "synthesis.prior_gain"]
    real_missing = [k for k in missing if k not in tolerated]
    if real_missing or unexpected:
        raise RuntimeError(f"MAT weights do not fit: missing {real_missing[:5]}, unexpected {unexpected[:5]}")
    return tolerated


def load_mat_weights(cfg: MATConfig, G: nn.Module | None = None, D: nn.Module | None = None) -> None:
    """Load `cfg.weights` (a converted file) into freshly built networks; nothing to do when it is None.

    G gets `cfg.weights_key` (G_ema by default); D is loaded only when the file holds one (G-only `.pth` exports
    do not), otherwise it keeps its initialisation.
    """
    if cfg.weights is None:
        return
    if G is not None:
        load_state_flexible(G, load_converted(cfg.weights, cfg.weights_key))
    if D is not None and has_network(cfg.weights, "D"):
        load_state_flexible(D, load_converted(cfg.weights, "D"))
