"""The bf16 mixed-precision path, run on CPU: one train_step of every stage and the pipeline's prediction.

`torch.autocast` takes bf16 on CPU too, and the stages open it on whatever device the run is on, so the code a GPU
run executes in bf16 (dtype mixing, the SDPA mask in the activation dtype, `.float()` before the losses, R1 in
fp32) is executed here, in CI, instead of on a user's first GPU launch. The same tests run on CUDA when there is a
GPU (`pytest -m gpu`, as `benchmarks/gpu_check.py` does).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from conftest import TINY_CONFIG, make_contest_folder
from PIL import Image
from torch import nn

from restoration.config import load_config
from restoration.models.attention import WindowAttention
from restoration.models.layers import Conv2dLayer, ModulatedConv2d
from restoration.pipeline import load_pipeline
from restoration.recipe import TrainConfig
from restoration.tasks import build_task

STAGES = ["detector", "inpaint", "colorize", "joint", "gan_baseline"]
DEVICES = [pytest.param("cpu"), pytest.param("cuda", marks=pytest.mark.gpu)]


def tiny_batch(batch: int = 2, size: int = 64, seed: int = 0, device: str = "cpu") -> dict:
    """What `prepare_batch` returns: rgb, gray, input in [-1, 1], known_mask {0, 1}."""
    g = torch.Generator().manual_seed(seed)
    rgb = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    gray = rgb.mean(dim=1, keepdim=True)
    known = torch.ones(batch, 1, size, size)
    known[:, :, 8:40, 12:44] = 0
    out = {"rgb": rgb, "gray": gray, "known_mask": known, "input": known * gray - (1 - known) * 0.9}
    return {k: v.to(device) for k, v in out.items()} | {"key": [f"k{i}" for i in range(batch)]}


class DtypeLog:
    """Records the output dtype of every compute layer, tagged by whether the layer was being trained."""

    LAYERS = (nn.Conv2d, nn.Linear, Conv2dLayer, ModulatedConv2d, WindowAttention)

    def __init__(self, networks: dict[str, nn.Module]) -> None:
        self.seen: dict[tuple[str, bool], set[torch.dtype]] = {}
        for name, net in networks.items():
            for module in net.modules():
                if isinstance(module, self.LAYERS):
                    module.register_forward_hook(self._hook(name))

    def _hook(self, name: str):
        def hook(module, args, out):
            out = out[0] if isinstance(out, tuple) else out
            trained = any(p.requires_grad for p in module.parameters())
            self.seen.setdefault((name, trained), set()).add(out.dtype)

        return hook


def build(stage: str, bf16: bool, device: str = "cpu"):
    """The stage's networks, optimizers and EMA on `device`, as `train.prepared_task` leaves them on one process."""
    cfg = load_config(TrainConfig, TINY_CONFIG)
    cfg = dataclasses.replace(cfg, stage=stage)
    torch.manual_seed(0)
    accelerator = Accelerator(cpu=device == "cpu", mixed_precision="no")
    task = build_task(cfg, accelerator, images_per_step=2, bf16=bf16)
    for net in [*task.parts.networks.values(), *task.parts.ema.values()]:
        net.to(device)
    if getattr(task, "perceptual", None) is not None:
        task.perceptual.to(device)
    return task


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_takes_a_bf16_train_step(stage, device):
    task = build(stage, bf16=True, device=device)
    log = DtypeLog(task.parts.networks)
    for step in (0, 1):  # step 0 takes the lazy R1 penalty (MAT stages), step 1 does not
        log.seen.clear()
        out = task.train_step(tiny_batch(seed=step, device=device), step)
        assert all(torch.isfinite(v).all() for v in out.values()), out
        assert float(out["skipped"]) == 0.0
        for (name, trained), dtypes in log.seen.items():
            if name == "mat_D" and trained and step == 0:
                assert dtypes == {torch.float32}, f"{stage}: the R1 step of mat_D must run in fp32, saw {dtypes}"
                assert out["r1"].dtype == torch.float32
                assert float(out["r1"]) > 0
            else:
                assert torch.bfloat16 in dtypes, f"{stage}: {name} (trained={trained}) never ran in bf16: {dtypes}"


@pytest.mark.parametrize("stage", ["inpaint", "colorize"])
def test_bf16_losses_stay_close_to_fp32(stage):
    """Same weights, same batch, same random draws: bf16 moves the losses by rounding, not by a bug."""
    losses = {}
    for bf16 in (False, True):
        task = build(stage, bf16=bf16)
        torch.manual_seed(1)
        losses[bf16] = task.train_step(tiny_batch(), 1)
    for key, ref in losses[False].items():
        if key != "skipped":
            assert abs(float(losses[True][key]) - float(ref)) <= 0.05 * abs(float(ref)) + 0.05, key


def test_an_fp32_run_never_enters_autocast():
    task = build("inpaint", bf16=False)
    log = DtypeLog(task.parts.networks)
    task.train_step(tiny_batch(), 1)
    assert set().union(*log.seen.values()) == {torch.float32}


@pytest.mark.parametrize("device", DEVICES)
def test_pipeline_predicts_in_bf16(tiny_export, tmp_path, device):
    root = make_contest_folder(tmp_path / "contest", count=3)
    grays = [np.asarray(Image.open(p)) for p in sorted((root / "test_input").glob("*.png"))]
    fp32 = load_pipeline([tiny_export], device).restore(grays, seed=2)
    pipeline = load_pipeline([tiny_export], device)
    log = DtypeLog(pipeline.networks)
    bf16 = pipeline.restore(grays, settings=pipeline.defaults.but(precision="bf16"), seed=2)
    assert all(dtypes == {torch.bfloat16} for dtypes in log.seen.values()), log.seen
    assert {name for name, _ in log.seen} == {"inpainter", "colorizer"}
    for a, b in zip(fp32, bf16):
        assert b.rgb.dtype == np.uint8
        assert b.rgb.shape == a.rgb.shape
        assert np.array_equal(a.known, b.known)
        assert np.abs(a.rgb.astype(int) - b.rgb.astype(int)).mean() < 4.0


def test_predict_cli_takes_bf16(tiny_export, tmp_path, capsys):
    from restoration.predict import main

    root = make_contest_folder(tmp_path / "contest", count=2)
    rc = main(["--model", str(tiny_export), "--input", str(root / "test.csv"), "--out", str(tmp_path / "out"),
               "--device", "cpu", "--precision", "bf16"])  # fmt: skip
    assert rc == 0
    assert "bf16" in capsys.readouterr().out
    assert len(list((tmp_path / "out").glob("*.png"))) == 2
