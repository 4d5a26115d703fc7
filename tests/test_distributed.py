"""restoration/distributed.py in one process: lost-peer errors, the timeout handed to accelerate, the BatchNorm
conversion, log lines once per job. The multi-rank behaviour is tested end to end in test_ddp_equivalence.py and
test_multinode.py."""

from __future__ import annotations

import copy
from datetime import timedelta
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from restoration.distributed import GlooSyncBatchNorm, is_peer_loss, process_group_kwargs, say, sync_batchnorm


@pytest.mark.parametrize(
    "message",
    [  # what gloo raised in this project's tests when a peer was killed or hung
        "[../gloo/transport/tcp/pair.cc:545] Read error [127.0.0.1]:7071: Connection reset by peer",
        "[../gloo/transport/tcp/pair.cc:561] Connection closed by peer [127.0.0.1]:32153",
        "[../gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 10000ms for recv operation to complete",
        "Application timeout caused pair closure",
    ],
)
def test_transport_errors_are_peer_losses(message):
    assert is_peer_loss(RuntimeError(message))


def test_other_errors_are_not_peer_losses():
    assert not is_peer_loss(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not is_peer_loss(ValueError("Connection reset by peer"))  # only what a collective raises
    assert is_peer_loss(torch.distributed.DistBackendError("NCCL communicator was aborted"))


@pytest.mark.parametrize("seconds", [20, 600, 1800])
def test_the_timeout_reaches_init_process_group(seconds):
    # accelerate drops a value equal to its default (600 s), which would leave gloo at 1800 s
    timeout = process_group_kwargs(seconds).to_kwargs()["timeout"]
    assert abs(timeout - timedelta(seconds=seconds)) < timedelta(milliseconds=1)


def test_conversion_keeps_parameters_and_buffers_and_is_plain_batchnorm_on_one_process():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1), nn.BatchNorm2d(2))
    reference = copy.deepcopy(net)
    params = list(net.parameters())
    converted = sync_batchnorm(net, torch.device("cpu"))
    assert isinstance(converted[1], GlooSyncBatchNorm)
    assert isinstance(converted[4], GlooSyncBatchNorm)
    assert all(a is b for a, b in zip(converted.parameters(), params))  # optimizers built before still work
    x = torch.randn(3, 1, 8, 8)
    torch.testing.assert_close(converted(x), reference(x))  # not distributed: BatchNorm itself
    torch.testing.assert_close(converted[1].running_var, reference[1].running_var)


def test_say_prints_on_the_global_main_process_only(capsys):
    say(SimpleNamespace(is_main_process=False, is_local_main_process=True), "step 1")  # node 2's first process
    assert capsys.readouterr().out == ""
    say(SimpleNamespace(is_main_process=True, is_local_main_process=True), "step 1")
    assert capsys.readouterr().out == "step 1\n"
