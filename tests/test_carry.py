"""`init.carry_state`: a joint stage that starts from the two stages' checkpoints continues their training (live
weights, Adam moments and steps, EMA copies), under its own learning rate; sources that cannot carry are refused
with the file named, before anything is created."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from safetensors.torch import load_file

from restoration.carry import CarryError, read_source
from restoration.config import load_config
from restoration.recipe import TrainConfig
from restoration.tasks import build_task
from restoration.train import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.yaml"


@pytest.fixture(scope="module")
def stage_checkpoints(tmp_path_factory, tiny_shards) -> tuple[Path, Path]:
    """inpaint and colorize, 2 steps each, checkpointed at step 2."""
    runs = tmp_path_factory.mktemp("carry") / "runs"
    for stage, name in (("inpaint", "a"), ("colorize", "b")):
        args = [str(TINY), f"run.output_dir={runs}", f"data.root={tiny_shards}", f"stage={stage}", f"run.name={name}",
                "run.max_steps=2", "run.eval_every=0", "optim.ema_half_life_images=2"]  # fmt: skip
        assert main(args) == 0
    return runs / "a" / "checkpoints" / "step-00000002", runs / "b" / "checkpoints" / "step-00000002"


def joint_parts(sources: list[Path], shards: Path, *extra: str):
    cfg = load_config(TrainConfig, TINY, ["stage=joint", f"data.root={shards}",
                                          f"init.from_weights=[{','.join(map(str, sources))}]", *extra])  # fmt: skip
    return build_task(cfg, Accelerator(cpu=True), images_per_step=2, bf16=False).parts


def same(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> bool:
    own = module.state_dict()
    return own.keys() == state.keys() and all(torch.equal(own[k], state[k]) for k in own)


def test_checkpoints_record_which_network_each_file_holds(stage_checkpoints):
    a, b = stage_checkpoints
    assert json.loads((a / "trainer.json").read_text())["prepared"] == {
        "networks": ["mat_G", "mat_D"], "optimizers": ["mat_G", "mat_D"]}  # fmt: skip
    source = read_source(b.parents[1])  # a run directory reads at its latest checkpoint
    assert source.directory == b
    assert source.networks == ["color_G", "color_D"]


def test_carry_state_continues_weights_optimizer_and_ema(stage_checkpoints, tiny_shards):
    a, b = stage_checkpoints
    parts = joint_parts([a, b], tiny_shards, "init.carry_state=true", "optim.lr=3e-4")
    for name, source, i in (("mat_G", a, 0), ("mat_D", a, 1), ("color_G", b, 0), ("color_D", b, 1)):
        suffix = "" if i == 0 else f"_{i}"
        live = load_file(str(source / f"model{suffix}.safetensors"))
        assert same(parts.networks[name], live), name
        saved = torch.load(source / f"optimizer{suffix}.bin", weights_only=True)
        state = parts.optimizers[name].state_dict()["state"]
        assert state.keys() == saved["state"].keys()
        assert len(state) > 0
        for k in state:
            assert torch.equal(state[k]["exp_avg"], saved["state"][k]["exp_avg"])
            assert torch.equal(torch.as_tensor(state[k]["step"]), torch.as_tensor(saved["state"][k]["step"]))
        group = parts.optimizers[name].param_groups[0]
        assert group["base_lr"] == pytest.approx(3e-4 if name.endswith("_G") else 1e-4)  # this stage's rate, not 1e-4
    for name, source in (("mat_G", a), ("color_G", b)):
        ema = load_file(str(source / f"ema_{name}.safetensors"))
        assert same(parts.ema[name], ema)
        assert not same(parts.networks[name], ema)  # two steps with a short half-life: the average lags the weights


def test_without_carry_the_stage_restarts_from_the_averages(stage_checkpoints, tiny_shards):
    a, b = stage_checkpoints
    parts = joint_parts([a, b], tiny_shards)
    assert all(len(o.state_dict()["state"]) == 0 for o in parts.optimizers.values())
    ema = load_file(str(a / "ema_mat_G.safetensors"))
    assert same(parts.networks["mat_G"], ema)
    assert same(parts.ema["mat_G"], ema)


def test_joint_trains_from_carried_state(stage_checkpoints, tiny_shards, tmp_path, caplog):
    a, b = stage_checkpoints
    args = [str(TINY), f"run.output_dir={tmp_path / 'runs'}", f"data.root={tiny_shards}", "stage=joint",
            "run.name=c", "run.max_steps=1", f"init.from_weights=[{a},{b}]", "init.carry_state=true"]  # fmt: skip
    with caplog.at_level(logging.INFO, logger="restoration.carry"):
        assert main(args) == 0
    carried = {r.getMessage().split()[1] for r in caplog.records if r.getMessage().startswith("carried")}
    assert carried == {"mat_G", "mat_D", "color_G", "color_D"}
    assert (tmp_path / "runs" / "c" / "final" / "pipeline.json").is_file()


def test_sources_that_cannot_carry_are_refused_before_the_run(stage_checkpoints, tiny_shards, tmp_path, capsys):
    a, b = stage_checkpoints
    export = b.parents[1] / "final"
    args = [str(TINY), f"run.output_dir={tmp_path / 'runs'}", f"data.root={tiny_shards}", "stage=joint",
            "run.name=e", f"init.from_weights=[{a},{export}]", "init.carry_state=true"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert str(export) in err
    assert "holds weights only" in err
    assert not (tmp_path / "runs" / "e").exists()

    old = tmp_path / "old-checkpoint"  # written before the prepare order was recorded
    old.mkdir()
    for f in a.iterdir():
        (old / f.name).write_bytes(f.read_bytes())
    state = json.loads((old / "trainer.json").read_text())
    del state["prepared"]
    (old / "trainer.json").write_text(json.dumps(state))
    with pytest.raises(CarryError, match=r"old-checkpoint/trainer.json does not record"):
        read_source(old)
    missing = tmp_path / "missing-optimizer"
    missing.mkdir()
    for f in a.iterdir():
        if f.name != "optimizer_1.bin":
            (missing / f.name).write_bytes(f.read_bytes())
    with pytest.raises(CarryError, match=r"optimizer_1.bin is missing \(network 'mat_D'"):
        read_source(missing)
