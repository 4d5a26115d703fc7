"""DDP equals one big batch: k steps on 2 gloo ranks with batch b give the weights (EMA copies and running statistics
included) of k steps on 1 rank with batch 2b over the same samples, for every GAN stage, to float tolerance.

This is the test that catches a lost gradient all-reduce, a frozen discriminator that DDP still syncs, an R1 step
that only one rank takes, or replicas whose buffers drift apart. It bypasses the shard loader: each stage is built
by the trainer's own `prepared_task` (same seed, accelerate's `prepare`), and each rank trains on its half of one
fixed batch with the stage's real `train_step`.

What has to be equal for the comparison to mean anything:
- **Random draws.** MAT draws its latent z, its per-pixel noise and its always-on feature dropout from the global RNG,
  and each rank seeds its own stream. Switching these sources off would leave MAT's noisy paths untested, so instead
  every draw of a step is made the big batch's way: `big_batch_draws` replaces `torch.randn` and `F.dropout` during
  the steps by versions that draw the (world x B, ...) tensor from one generator seeded alike everywhere and keep
  this rank's rows. The 1-rank run draws the same (2b, ...) tensors, so both runs see exactly the same noise per
  sample. Any other random call in a step fails the test loudly (it would need the same treatment).
- **Layers that couple a batch.** BatchNorm (timm encoders and the U-Net decoders): `run.sync_batchnorm=true`, the
  option this test proves equal. MAT's minibatch-stddev groups stay inside a rank's batch by design (as in the
  official multi-GPU training), so the test sets `mbstd_group_size: 1`. MAT's truncation during training mixes each
  sample's w with `w_avg`, updated in the same forward from the local batch; the running average itself is made
  equal (`average_running_stats`), but its in-step use is rank-local, so the test trains at `mat_truncation=1`.
- **Batch-size-dependent settings** (the EMA decay is computed from the global batch) match because run.batch_size
  is b on 2 ranks and 2b on 1 rank.
- **Float noise that training would amplify.** The two runs add the same numbers in a different order. In float32
  that leaves gradients equal to ~1e-6 relative, and training amplifies a little of it into large weight
  differences: a ReLU or a BatchNorm input near a tie goes the other way, Adam's first step (lr * g / (|g| + eps))
  turns an exactly-zero gradient's rounding noise into a full +-lr move, a pixel's hue jumps between sectors when
  two channels tie. A float32 version of this test passed on one CPU and failed on CI's (up to 7e-5 in a few
  BatchNorm entries of the colorizer). So both runs train in **float64** (`torch.set_default_dtype`; the code never
  narrows to float32: `restoration.precision.widen`), where rounding is ~1e-16 and nothing has to be switched off:
  the real Adam eps and every loss of the stage, the hue histogram included.

The comparison: every tensor of every network (unwrapped state dict: parameters and buffers) and of every EMA copy,
to |a - b| <= 1e-8 + 1e-6 |b|, after STEPS = 2 steps (step 0 has MAT's lazy R1 penalty) at lr 1e-4. Measured: the
largest difference is 1.1e-12 (float64; the test prints it per stage with `-s`); the same 2-rank run without the
gradient all-reduce differs in most of the tensors of `joint` (`test_the_comparison_catches_a_lost_all_reduce`).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.yaml"
STAGES = ("inpaint", "colorize", "joint", "gan_baseline")
CONTROL_STAGE = "joint"  # trained once more without the gradient all-reduce
STEPS = 2  # step 0 takes MAT's lazy R1 penalty, step 1 does not
HALF = 2  # per-rank batch b
SEED = 1234


def equivalence_config(stage: str, batch_size: int, output_dir: Path):
    from restoration.config import load_config
    from restoration.recipe import TrainConfig

    return load_config(
        TrainConfig, TINY,
        [f"stage={stage}", f"run.batch_size={batch_size}", f"run.output_dir={output_dir}", "run.sync_batchnorm=true",
         "mat.extra={mbstd_group_size: 1}", "loss.mat_truncation=1.0"],
    )  # fmt: skip


def fixed_batch(n: int, size: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    """n smooth color images in [-1, 1] with a rectangular hole each, laid out like `prepare_batch`'s output."""
    from restoration.data.color import rgb_to_luma

    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    freq = 1 + 4 * torch.rand(n, 3, 1, 1, generator=g)
    phase = 6 * torch.rand(n, 3, 1, 1, generator=g)
    rgb = torch.sin(freq * xx + phase) * torch.cos(0.5 * freq * yy - phase)  # (n, 3, H, W)
    gray = rgb_to_luma(rgb).clamp(-1, 1)
    known = torch.ones(n, 1, size, size)
    for i in range(n):
        y0, x0 = torch.randint(0, size // 2, (2,), generator=g).tolist()
        known[i, :, y0 : y0 + size // 3, x0 : x0 + size // 3] = 0
    return {"rgb": rgb, "gray": gray, "known_mask": known, "input": known * gray + (1 - known) * -0.8}


@contextlib.contextmanager
def big_batch_draws(rank: int, world: int, seed: int) -> Iterator[dict[str, int]]:
    """During the block, `torch.randn` and `F.dropout` draw for the global batch (world x the local batch size) from
    one generator seeded alike on every rank, and return this rank's rows; other random calls raise."""
    gen = torch.Generator().manual_seed(seed)
    randn, rand, dropout = torch.randn, torch.rand, F.dropout
    calls = {"randn": 0, "dropout": 0}

    def rows(full: torch.Tensor, local: int) -> torch.Tensor:
        return full[rank * local : (rank + 1) * local]

    def sliced_randn(*size, generator=None, device=None, dtype=None, **kwargs):
        if generator is not None:
            return randn(*size, generator=generator, device=device, dtype=dtype, **kwargs)
        shape = tuple(size[0]) if len(size) == 1 and not isinstance(size[0], int) else size
        calls["randn"] += 1
        full = randn((world * shape[0], *shape[1:]), generator=gen, dtype=dtype or torch.get_default_dtype())
        return rows(full, shape[0]).to(device)

    def sliced_dropout(x, p=0.5, training=True, inplace=False):
        if not training or p == 0:
            return x
        calls["dropout"] += 1
        keep = rand((world * x.shape[0], *x.shape[1:]), generator=gen) >= p
        return x * rows(keep, x.shape[0]).to(x) / (1 - p)

    def forbidden(name):
        def draw(*args, **kwargs):
            raise AssertionError(f"torch.{name} in a training step: make big_batch_draws slice it too")

        return draw

    patched = {"randn": sliced_randn, **{n: forbidden(n) for n in ("rand", "rand_like", "randn_like", "randint",
                                                                   "bernoulli", "randperm", "normal")}}  # fmt: skip
    saved = {name: getattr(torch, name) for name in patched}
    try:
        for name, fn in patched.items():
            setattr(torch, name, fn)
        F.dropout = sliced_dropout
        yield calls
    finally:
        for name, fn in saved.items():
            setattr(torch, name, fn)
        F.dropout = dropout


def train_steps(stage: str, output_dir: Path, *, all_reduce: bool = True) -> dict[str, torch.Tensor]:
    """Build `stage` as the trainer does, train STEPS steps on this rank's half of the fixed batch, return every
    network's and EMA copy's state (CPU tensors) keyed `<network>.<tensor>` / `ema_<network>.<tensor>`.
    `all_reduce=False` trains with DDP's gradient all-reduce switched off (`no_sync`): the broken run the
    comparison must catch."""
    with default_dtype(torch.float64):
        return _train_steps(stage, output_dir, all_reduce=all_reduce)


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    saved = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(saved)


def _train_steps(stage: str, output_dir: Path, *, all_reduce: bool) -> dict[str, torch.Tensor]:
    from restoration.trainer import make_accelerator, prepared_task

    world = int(os.environ.get("WORLD_SIZE", "1"))
    cfg = equivalence_config(stage, HALF * 2 // world, output_dir)
    accelerator = make_accelerator(cfg.run)
    assert accelerator.num_processes == world
    task = prepared_task(cfg, accelerator, bf16=False)
    rank = accelerator.process_index
    local = {k: v[rank * HALF * 2 // world : (rank + 1) * HALF * 2 // world].to(accelerator.device)
             for k, v in fixed_batch(2 * HALF).items()}  # fmt: skip
    with big_batch_draws(rank, world, SEED) as calls, contextlib.ExitStack() as no_sync:
        if not all_reduce:
            for net in task.parts.networks.values():
                no_sync.enter_context(net.no_sync())
        for step in range(STEPS):
            losses = task.train_step(local, step)
            assert not losses["skipped"], f"{stage}: step {step} skipped (non-finite gradients)"
    if stage in ("inpaint", "joint"):
        assert calls["randn"], f"MAT drew no z or noise? {calls}"
        assert calls["dropout"], f"MAT drew no dropout? {calls}"
    state: dict[str, torch.Tensor] = {}
    for prefix, nets in (("", task.parts.networks), ("ema_", task.parts.ema)):
        for name, net in nets.items():
            for key, value in accelerator.unwrap_model(net).state_dict().items():
                state[f"{prefix}{name}.{key}"] = value.detach().cpu().clone().contiguous()
    return state


def worker(out_dir: Path) -> None:
    """Under torchrun: every stage on this rank, its state saved as `<stage>-rank<R>.safetensors`."""
    rank = int(os.environ["RANK"])
    for stage in STAGES:
        save_file(train_steps(stage, out_dir / "runs"), str(out_dir / f"{stage}-rank{rank}.safetensors"))
    broken = train_steps(CONTROL_STAGE, out_dir / "runs", all_reduce=False)
    save_file(broken, str(out_dir / f"{CONTROL_STAGE}-no-all-reduce-rank{rank}.safetensors"))


def mismatches(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol=1e-8, rtol=1e-6) -> list[str]:
    assert a.keys() == b.keys()
    bad = []
    for key in sorted(a):
        x, y = a[key].double(), b[key].double()
        if not torch.allclose(x, y, atol=atol, rtol=rtol):
            diff = (x - y).abs()
            bad.append(f"{key}: max |diff| {diff.max():.3g}, {(diff > atol + rtol * y.abs()).sum()} of {x.numel()}")
    return bad


@pytest.fixture(scope="module")
def two_rank_states(tmp_path_factory) -> Path:
    """One torchrun of 2 gloo ranks over all the stages (one launch: startup dominates)."""
    out = tmp_path_factory.mktemp("ddp-equivalence")
    from test_train import free_port

    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(free_port()), __file__, str(out)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    start = time.time()
    proc = subprocess.run(cmd, cwd=out, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    print(f"2-rank run of {len(STAGES)} stages: {time.time() - start:.1f} s")
    return out


@pytest.fixture(scope="module")
def one_rank_state(tmp_path_factory):
    """The 1-rank run of a stage (batch 2b, in this process), computed once per stage."""
    cache: dict[str, dict[str, torch.Tensor]] = {}

    def get(stage: str) -> dict[str, torch.Tensor]:
        if stage not in cache:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # as under torchrun
            try:
                cache[stage] = train_steps(stage, tmp_path_factory.mktemp("one-rank") / "runs")
            finally:
                torch.set_num_threads(threads)
        return cache[stage]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES)
def test_two_ranks_equal_one_rank_with_twice_the_batch(stage, two_rank_states, one_rank_state):
    rank0 = load_file(str(two_rank_states / f"{stage}-rank0.safetensors"))
    rank1 = load_file(str(two_rank_states / f"{stage}-rank1.safetensors"))
    assert not mismatches(rank0, rank1, atol=0, rtol=0), "the two ranks' replicas differ"
    single = one_rank_state(stage)
    bad = mismatches(rank0, single)
    worst = max((rank0[k].double() - single[k].double()).abs().max().item() for k in single if single[k].numel())
    print(f"{stage}: largest |2 ranks - 1 rank| = {worst:.3g}")
    assert not bad, f"{stage}: 2 ranks x batch {HALF} != 1 rank x batch {2 * HALF}:\n" + "\n".join(bad[:20])


@pytest.mark.slow
def test_the_comparison_catches_a_lost_all_reduce(two_rank_states, one_rank_state):
    """The same 2-rank run with DDP's gradient all-reduce switched off must fail the comparison, widely."""
    single = one_rank_state(CONTROL_STAGE)
    for rank in (0, 1):
        broken = load_file(str(two_rank_states / f"{CONTROL_STAGE}-no-all-reduce-rank{rank}.safetensors"))
        bad = len(mismatches(broken, single))
        print(f"without the all-reduce, rank {rank}: {bad} of {len(single)} tensors differ")
        assert bad > len(single) // 2


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
