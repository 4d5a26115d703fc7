"""What training on several ranks needs beyond accelerate: a bounded wait for a lost peer, BatchNorm statistics of
the global batch, and running statistics that stay equal on every rank.

- **Lost peers.** A rank blocked in a collective whose peer is gone waits at most the process group's timeout,
  `run.dist_timeout_s` (`process_group_kwargs`). gloo notices a killed peer at once (its sockets close); a peer that
  hangs, or a node that vanishes without closing its connections, costs the whole timeout. `is_peer_loss` recognises
  the error so that the trainer can say what happened instead of printing a transport traceback.
- **Layers that couple the samples of a batch.** DDP averages the gradients of per-rank mean losses, which equals
  one big batch only if no layer mixes the samples of a batch. BatchNorm does, through its statistics:
  `run.sync_batchnorm` computes them over the global batch (`sync_batchnorm`: torch's SyncBatchNorm on GPUs,
  `GlooSyncBatchNorm` on CPU ranks, where torch's refuses to run). MAT's minibatch-stddev groups stay inside each
  rank's batch, as in the official multi-GPU training (StyleGAN2-ADA); that difference is documented, not removed.
- **Running statistics** (BatchNorm's running mean and variance, MAT's `w_avg`) are updated in forward from the
  local batch, and buffers are not broadcast (see `train.make_accelerator`). `average_running_stats` averages them
  over the ranks after every optimizer step: their updates are affine in the batch mean, so the average is exactly
  what one big batch would have given, and the replicas, EMA copies included, stay equal.
- **Log lines once per job.** `accelerator.print` prints on each node's local main process, so a 16-node job
  would show every progress line 16 times; `say` prints on the global main process only. An error that concerns
  one rank is printed by that rank, to stderr.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import TextIO

import torch
import torch.distributed as dist
from accelerate import Accelerator
from accelerate.utils import InitProcessGroupKwargs
from torch import Tensor, nn

RUNNING_STATS = ("running_mean", "running_var", "w_avg")  # buffers that average the batches seen in training
# what a collective raises when a peer is gone: the transport's words (gloo, NCCL) or torch's DistError family
_PEER_LOSS_MARKERS = (
    "Connection reset by peer", "Connection closed by peer", "Broken pipe", "Timed out waiting", "timed out",
    "timeout caused pair closure", "gloo/transport", "NCCL", "Socket Timeout",
)  # fmt: skip


def process_group_kwargs(timeout_s: float) -> InitProcessGroupKwargs:
    """The process group's timeout: how long any collective waits for the slowest rank before raising.

    accelerate passes only values that differ from its default (600 s, NCCL's), so 600 s exactly would leave gloo at
    its own 1800 s: one microsecond more keeps the value the user asked for."""
    return InitProcessGroupKwargs(timeout=timedelta(seconds=timeout_s, microseconds=1))


def say(accelerator: Accelerator, message: str, *, file: TextIO | None = None) -> None:
    """Print a line once per job: on the global main process (flushed: a batch job's log is a file, and a progress
    line sitting in a buffer says nothing about where the job is)."""
    if accelerator.is_main_process:
        print(message, file=file, flush=True)


def is_peer_loss(err: BaseException) -> bool:
    """Whether `err` is a collective failing because another rank died, hung or became unreachable."""
    if isinstance(err, getattr(dist, "DistError", ())):
        return True
    return isinstance(err, RuntimeError) and any(marker in str(err) for marker in _PEER_LOSS_MARKERS)


# -- BatchNorm over the global batch -------------------------------------------------------------------------------


class _SumOverRanks(torch.autograd.Function):
    """All-reduce (sum) with a gradient: every rank's loss depends on the sum, so the gradient of the sum of those
    losses with respect to one rank's input is the sum of the ranks' output gradients (one more all-reduce)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        x = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)
        return grad


class GlooSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the global batch, on any backend (torch's `SyncBatchNorm`
    accepts only GPU tensors). Two differentiable all-reduces per forward (per-channel sums and count, then centred
    squares: the same two-pass biased variance as BatchNorm), so the gradient is the big batch's too."""

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected a (N, C, ...) input, got shape {tuple(x.shape)}")

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = (1, -1) + (1,) * (x.dim() - 2)  # (1, C, 1, 1) for images
        count = x.new_tensor([x.numel() / x.shape[1]])
        sums = _SumOverRanks.apply(torch.cat([x.sum(dims), count]))  # (C + 1,): summed over the ranks
        n = sums[-1]
        mean = sums[:-1] / n
        centred = x - mean.view(shape)
        var = _SumOverRanks.apply(centred.square().sum(dims)) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean, momentum)
                self.running_var.lerp_(var * n / (n - 1).clamp(min=1), momentum)  # unbiased, as BatchNorm keeps
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def _to_gloo_sync(module: nn.Module) -> nn.Module:
    if type(module) in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d):
        new = GlooSyncBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        if module.affine:  # the same Parameter objects: optimizers built before the conversion keep working
            new.weight, new.bias = module.weight, module.bias
        if module.track_running_stats:
            new.running_mean, new.running_var = module.running_mean, module.running_var
            new.num_batches_tracked = module.num_batches_tracked
        return new.train(module.training)
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        raise NotImplementedError(
            f"run.sync_batchnorm on CPU ranks supports plain BatchNorm layers, not {type(module).__name__}"
        )
    for name, child in module.named_children():
        module.add_module(name, _to_gloo_sync(child))
    return module


def sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """`module` with every BatchNorm computing its statistics over all ranks; parameters and buffers are kept (the
    same objects), so it can be converted after its optimizer and EMA copy were made."""
    if device.type == "cuda":
        from timm.layers import convert_sync_batchnorm  # torch's SyncBatchNorm, also for timm's BatchNormAct2d

        return convert_sync_batchnorm(module)
    return _to_gloo_sync(module)


# -- running statistics equal on every rank --------------------------------------------------------------------


@torch.no_grad()
def average_running_stats(modules: Iterable[nn.Module], accelerator: Accelerator) -> None:
    """Average the running-statistic buffers (`RUNNING_STATS`) of `modules` over the ranks (a collective: every rank
    calls it with the same modules)."""
    if accelerator.num_processes == 1:
        return
    buffers = [
        b for m in modules for name, b in m.named_buffers()
        if name.rsplit(".", 1)[-1] in RUNNING_STATS and b.is_floating_point()
    ]  # fmt: skip
    if not buffers:
        return
    flat = torch.cat([b.reshape(-1) for b in buffers])
    dist.all_reduce(flat)
    flat /= accelerator.num_processes
    for b, value in zip(buffers, flat.split([b.numel() for b in buffers])):
        b.copy_(value.view_as(b))


# -- the end-of-run proof that DDP replicas stayed identical (a misconfigured launch trains each rank its own model)


def parameter_checksum(networks: dict[str, nn.Module]) -> float:
    """A float64 fingerprint of all parameters (sum and sum of squares, position-weighted)."""
    total = torch.zeros((), dtype=torch.float64)
    for i, (_, module) in enumerate(sorted(networks.items())):
        for j, p in enumerate(module.parameters()):
            x = p.detach().double().cpu()
            total += (i + 1) * (j + 1) * (x.sum() + x.square().sum())
    return float(total)


def replica_report(accelerator: Accelerator, networks: dict[str, nn.Module]) -> dict:
    """Collective: every rank's checksum, the launch's shape, and whether all replicas agree."""
    local = torch.tensor([parameter_checksum(networks)], dtype=torch.float64, device=accelerator.device)
    checksums = accelerator.gather(local).cpu().tolist() if accelerator.num_processes > 1 else local.cpu().tolist()
    return {
        "num_processes": accelerator.num_processes,
        "distributed_type": str(accelerator.distributed_type).split(".")[-1],
        "checksums": checksums,
        "in_sync": max(checksums) - min(checksums) <= 1e-9 * max(1.0, abs(checksums[0])),
    }
