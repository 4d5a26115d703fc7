"""A cheap end-of-run proof that DDP replicas stayed identical: per-rank parameter checksums, gathered.

A misconfigured launch (e.g. two unsynchronised CPU processes, see ENV.md) trains "fine" but each rank learns its
own model; comparing checksums at the end turns that silent failure into a loud one.
"""

from __future__ import annotations

import torch
from accelerate import Accelerator
from torch import nn


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
