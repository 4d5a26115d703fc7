"""What every stage shares, assembled once: its networks, their optimizers, EMA copies, schedule and export.

A stage file then holds only what is its own: which networks, its `train_step` (the readable order of D step,
G step, EMA) and `predict`. No base class: a stage has a `parts` field and calls these methods.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from torch import Tensor, nn

from restoration.carry import carry_state
from restoration.distributed import average_running_stats
from restoration.optim import (
    OptimConfig,
    apply_lr,
    ema_decay_from_half_life,
    ema_update,
    lr_factor,
    make_adam,
    make_ema,
    optimizer_step,
    requires_grad,
)
from restoration.recipe import TrainConfig, pipeline_meta
from restoration.weights import Role, by_role, export_weights, exportable_networks, load_init_weights, network_spec


@dataclass
class StageParts:
    accelerator: Accelerator
    networks: dict[str, nn.Module]  # trained networks, replaced by their prepared (DDP) versions in `train`
    optimizers: dict[str, torch.optim.Optimizer]
    ema: dict[str, nn.Module]  # EMA copies: evaluated, checkpointed and exported
    ema_decay: float
    optim: OptimConfig
    max_steps: int
    bf16: bool

    def set_lr(self, step: int) -> None:
        """Every optimizer on the schedule's curve at `step`."""
        factor = lr_factor(step, self.max_steps, self.optim)
        for optimizer in self.optimizers.values():
            apply_lr(optimizer, factor)

    def current_lr(self, step: int) -> float:
        return self.optim.lr * lr_factor(step, self.max_steps, self.optim)

    def autocast(self, enabled: bool = True) -> contextlib.AbstractContextManager:
        """bf16 autocast on the run's device (CUDA or CPU: the same code path) when the run uses bf16, nothing in
        an fp32 run. `enabled=False` in a bf16 run turns autocast *off* for its block (the lazy R1 penalty runs in
        fp32), also when an outer block has it on."""
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.accelerator.device.type, dtype=torch.bfloat16, enabled=enabled)

    def train(self, *names: str) -> None:
        """Unfreeze these networks (a discriminator before its own step)."""
        for name in names:
            requires_grad(self.networks[name], True)

    def freeze(self, *names: str) -> None:
        """Freeze these networks (a discriminator during the generator step)."""
        for name in names:
            requires_grad(self.networks[name], False)

    def plain(self, name: str) -> nn.Module:
        """The network without its DDP wrapper: frozen discriminators are called this way in generator steps, so
        DDP never sees a forward whose parameters get no gradient."""
        return self.accelerator.unwrap_model(self.networks[name])

    def for_r1(self, name: str, r1_weight: float) -> nn.Module:
        """The discriminator for a D step: as prepared, except on a lazy R1 step of a compiled run, where it is the
        same network (DDP wrapper kept) without torch.compile's: R1 differentiates the discriminator twice, which
        compiled graphs do not support (`run.compile=true` failed on its first step)."""
        network = self.networks[name]
        return without_compile(network) if r1_weight > 0 else network

    def apply(self, loss: Tensor, *names: str) -> bool:
        """Backward `loss`, then clip and step each named network (a step whose gradient is non-finite is skipped),
        average every network's running statistics over the ranks (so that the EMA copies them equal everywhere),
        and update the EMA copies; returns whether any step was skipped."""
        self.accelerator.backward(loss)
        skipped = {
            name: optimizer_step(
                self.accelerator, self.optimizers[name], self.networks[name].parameters(), self.optim.grad_clip
            )[1]
            for name in names
        }
        if self.accelerator.sync_gradients:
            average_running_stats(self.networks.values(), self.accelerator)
        for name in names:
            if name in self.ema and self.accelerator.sync_gradients and not skipped[name]:
                ema_update(self.ema[name], self.plain(name), self.ema_decay)
        return any(skipped.values())

    def inference_networks(self) -> dict[Role, nn.Module]:
        """What validation restores with, keyed by pipeline role: the EMA copies (the networks that are exported)."""
        return by_role(exportable_networks(self.ema, self.networks, self.accelerator.unwrap_model))

    def export(self, out_dir: Path, cfg: TrainConfig, inference: dict | None = None) -> Path:
        """The exported networks and `pipeline.json`, with the chosen inference settings when there are some."""
        networks = exportable_networks(self.ema, self.networks, self.accelerator.unwrap_model)
        return export_weights(networks, out_dir, pipeline_meta(cfg), inference=inference)


def without_compile(network: nn.Module) -> nn.Module:
    """The module that torch.compile wrapped (the same parameters, run eagerly), or the module itself."""
    return getattr(network, "_orig_mod", network)


def step_report(d_losses: dict[str, Tensor], g_losses: dict[str, Tensor], skipped: bool) -> dict[str, Tensor]:
    """A step's detached scalars: discriminator losses as they are, generator terms as `g_<term>`, their sum as
    `g_loss`, and whether a non-finite gradient skipped an update."""
    return {
        **{k: v.detach() for k, v in d_losses.items()},
        **{f"g_{k}": v.detach() for k, v in g_losses.items()},
        "g_loss": sum(g_losses.values()).detach(),
        "skipped": torch.tensor(float(skipped)),
    }


def assemble(
    cfg: TrainConfig,
    accelerator: Accelerator,
    networks: dict[str, nn.Module],
    *,
    ema: tuple[str, ...],
    images_per_step: int,
    bf16: bool,
) -> StageParts:
    """Initial weights (`init.from_weights`), an Adam per network (discriminators at `optim.d_lr`), and
    EMA copies of the `ema` networks, decaying per the run's global batch; with `init.carry_state`, the Adam state,
    live weights and EMA copies of the checkpoints' networks carried over (`restoration.carry`)."""
    load_init_weights(networks, cfg.init.from_weights, strict=cfg.init.strict)
    optim = cfg.optim
    optimizers = {
        name: make_adam(net.parameters(), optim.d_lr if _is_critic(name) else optim.lr, optim)
        for name, net in networks.items()
    }
    averages = {name: make_ema(networks[name]) for name in ema}
    if cfg.init.carry_state:
        carry_state(cfg.init.from_weights, networks, optimizers, averages)
    return StageParts(
        accelerator=accelerator,
        networks=networks,
        optimizers=optimizers,
        ema=averages,
        ema_decay=ema_decay_from_half_life(optim.ema_half_life_images, images_per_step * accelerator.num_processes),
        optim=optim,
        max_steps=cfg.run.max_steps,
        bf16=bf16,
    )


def _is_critic(name: str) -> bool:
    return network_spec(name).optimizer == "discriminator"
