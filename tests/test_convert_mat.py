"""The MAT checkpoint importer: official-structure pickles convert without running code; malicious ones are refused."""

from __future__ import annotations

import pickle
import sys
import types
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn

from restoration.convert_mat import main
from restoration.models.mat import MATConfig, build_discriminator, build_generator
from restoration.models.mat_checkpoint import UnsafePickleError, convert, has_network, load_converted, load_mat_weights


@pytest.fixture
def official_modules(monkeypatch):
    """Stand-ins for the modules an official pickle references, so our test pickles name the same globals."""
    persistence = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # never called by the importer under test
        raise AssertionError("the importer must not call into the pickled code")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    util = types.ModuleType("dnnlib.util")

    class EasyDict(dict):
        pass

    EasyDict.__module__ = "dnnlib.util"
    EasyDict.__qualname__ = "EasyDict"
    util.EasyDict = EasyDict
    for name, module in {
        "torch_utils": types.ModuleType("torch_utils"),
        "torch_utils.persistence": persistence,
        "dnnlib": types.ModuleType("dnnlib"),
        "dnnlib.util": util,
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
    return persistence, util


class Persistent:
    """Pickles like a StyleGAN2-ADA persistent class: a call with the class source and the instance state."""

    def __init__(self, class_name: str, state: dict) -> None:
        self.meta = {"type": "class", "version": 6, "module_src": "raise SystemExit('never run')",
                     "class_name": class_name, "state": state}  # fmt: skip

    def __reduce__(self):
        return (sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, (self.meta,))


def persistent_tree(module: nn.Module, easydict) -> object:
    """Our module tree re-expressed with official-style persistent records (ModuleLists stay torch classes)."""
    children = OrderedDict((name, persistent_tree(child, easydict)) for name, child in module.named_children())
    if isinstance(module, nn.ModuleList):
        shell = nn.ModuleList()
        shell._modules = children
        return shell
    state = {
        "_parameters": OrderedDict((k, v) for k, v in module._parameters.items()),
        "_buffers": OrderedDict((k, v) for k, v in module._buffers.items()),
        "_non_persistent_buffers_set": set(module._non_persistent_buffers_set),
        "_modules": children,
        "training": False,
        "_init_kwargs": easydict(img_resolution=64, z_dim=32),
    }
    return Persistent(type(module).__name__, state)


def test_faithful_pickle_round_trips_to_strictly_loadable_safetensors(official_modules, tmp_path):
    _, util = official_modules
    torch.manual_seed(0)
    G, D = build_generator(MATConfig(preset="tiny")), build_discriminator(MATConfig(preset="tiny"))
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn_like(p))
    blob = {
        "G": persistent_tree(G, util.EasyDict),
        "G_ema": persistent_tree(G, util.EasyDict),
        "D": persistent_tree(D, util.EasyDict),
        "augment_pipe": None,
        "training_set_kwargs": util.EasyDict(a=1),
    }
    src = tmp_path / "network-snapshot.pkl"
    src.write_bytes(pickle.dumps(blob))
    out = tmp_path / "mat.safetensors"
    assert main([str(src), str(out)]) == 0
    assert has_network(out, "D")
    fresh_G, fresh_D = build_generator(MATConfig(preset="tiny")), build_discriminator(MATConfig(preset="tiny"))
    fresh_G.load_state_dict(load_converted(out, "G_ema"), strict=True)
    fresh_D.load_state_dict(load_converted(out, "D"), strict=True)
    for (k, a), (_, b) in zip(G.state_dict().items(), fresh_G.state_dict().items()):
        assert torch.equal(a, b), k
    # the trainer's path: build the architecture, then load MATConfig.weights into G and D
    cfg = MATConfig(preset="tiny", weights=out)
    loaded, loaded_D = build_generator(cfg), build_discriminator(cfg)
    load_mat_weights(cfg, loaded, loaded_D)
    assert torch.equal(loaded.mapping.fc0.weight, G.mapping.fc0.weight)
    for (k, a), (_, b) in zip(D.state_dict().items(), loaded_D.state_dict().items()):
        assert torch.equal(a, b), k
    # the fill prior's gain is the one key an official checkpoint lacks; it stays 0 (the generator returns the fill)
    with_prior = build_generator(MATConfig(preset="tiny", weights=out, prior="fill"))
    load_mat_weights(MATConfig(preset="tiny", weights=out, prior="fill"), with_prior)
    assert torch.equal(with_prior.mapping.fc0.weight, G.mapping.fc0.weight)
    assert with_prior.synthesis.prior_gain.item() == 0.0


class Evil:
    def __reduce__(self):
        import os

        return (os.system, (f"touch {Evil.marker}",))


def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path, capsys):
    marker = tmp_path / "pwned"
    Evil.marker = marker
    src = tmp_path / "evil.pkl"
    src.write_bytes(pickle.dumps({"G_ema": Evil()}))
    with pytest.raises(UnsafePickleError, match="not on the allow-list"):
        convert(src, tmp_path / "out.safetensors")
    assert main([str(src), str(tmp_path / "out.safetensors")]) == 3
    assert "refused" in capsys.readouterr().err
    assert not marker.exists()
    assert not (tmp_path / "out.safetensors").exists()


def test_g_only_state_dict_without_noise_keys(tmp_path):
    G = build_generator(MATConfig(preset="tiny"))
    state = {k: v for k, v in G.state_dict().items() if "noise_" not in k}
    src = tmp_path / "G.pth"
    torch.save(state, src)
    out = tmp_path / "g.safetensors"
    convert(src, out)
    cfg = MATConfig(preset="tiny", weights=out)
    loaded, D = build_generator(cfg), build_discriminator(cfg)
    D_init = {k: v.clone() for k, v in D.state_dict().items()}
    load_mat_weights(cfg, loaded, D)
    assert torch.equal(loaded.mapping.fc1.weight, G.mapping.fc1.weight)
    assert all(torch.equal(v, D_init[k]) for k, v in D.state_dict().items())  # no D in the file: D stays as built


def test_load_mat_weights_without_weights_is_a_no_op():
    torch.manual_seed(0)
    G = build_generator(MATConfig(preset="tiny"))
    before = {k: v.clone() for k, v in G.state_dict().items()}
    load_mat_weights(MATConfig(preset="tiny"), G, None)
    assert all(torch.equal(v, before[k]) for k, v in G.state_dict().items())


def test_truncated_pickle_gives_a_clear_error(tmp_path):
    src = tmp_path / "cut.pkl"
    src.write_bytes(pickle.dumps({"G": 1})[:5])
    with pytest.raises(ValueError, match="truncated"):
        convert(src, tmp_path / "x.safetensors")


def test_missing_converted_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="restoration-convert-mat"):
        load_converted(Path(tmp_path / "nope.safetensors"))
