"""The `gan_baseline` stage: the original notebook's model, one U-Net doing inpainting and coloring at once.

U-Net 1 -> 3 on the masked gray input + PatchGAN, BCE + 100 * L1 (pix2pix). It exists to be beaten: the quality
study trains it at the same compute as the two-stage and joint pipelines.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from accelerate import Accelerator
from torch import Tensor, nn

from restoration.losses.adversarial import d_logistic_loss, g_nonsaturating_loss
from restoration.losses.reconstruction import l1
from restoration.models.baseline import build_baseline
from restoration.tasks.gan_mechanics import (
    ema_decay_from_half_life,
    ema_update,
    make_ema,
    optimizer_step,
    requires_grad,
)
from restoration.tasks.inpainting import autocast, pipeline_meta
from restoration.tasks.schedule import apply_lr, lr_factor, make_adam
from restoration.tasks.weights_io import export_weights, exportable_networks, load_init_weights

if TYPE_CHECKING:
    from restoration.train import TrainConfig


@dataclass
class GanBaselineTask:
    cfg: TrainConfig
    accelerator: Accelerator
    networks: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    ema: dict[str, nn.Module]
    ema_decay: float
    bf16: bool

    @classmethod
    def build(cls, cfg: TrainConfig, accelerator: Accelerator, *, images_per_step: int, bf16: bool) -> GanBaselineTask:
        G, D = build_baseline(cfg.baseline)
        load_init_weights({"baseline_G": G, "baseline_D": D}, cfg.init.from_weights, strict=cfg.init.strict)
        optim = cfg.optim
        return cls(
            cfg=cfg,
            accelerator=accelerator,
            networks={"baseline_G": G, "baseline_D": D},
            optimizers={
                "baseline_G": make_adam(G.parameters(), optim.lr, optim),
                "baseline_D": make_adam(D.parameters(), optim.d_lr, optim),
            },
            ema={"baseline_G": make_ema(G)},
            ema_decay=ema_decay_from_half_life(optim.ema_half_life_images, images_per_step * accelerator.num_processes),
            bf16=bf16,
        )

    def current_lr(self, step: int) -> float:
        return self.cfg.optim.lr * lr_factor(step, self.cfg.run.max_steps, self.cfg.optim)

    def train_step(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        acc = self.accelerator
        G, D = self.networks["baseline_G"], self.networks["baseline_D"]
        opt_G, opt_D = self.optimizers["baseline_G"], self.optimizers["baseline_D"]
        factor = lr_factor(step, self.cfg.run.max_steps, self.cfg.optim)
        apply_lr(opt_G, factor)
        apply_lr(opt_D, factor)
        masked, gt = batch["input"], batch["rgb"]
        B = gt.shape[0]

        requires_grad(D, True)
        with torch.no_grad(), autocast(acc, self.bf16):
            fake = G(masked)
        with autocast(acc, self.bf16):
            logits = D(torch.cat([gt, fake.float()]), torch.cat([masked, masked]))
            d_loss = d_logistic_loss(logits[:B], logits[B:])  # = BCE with logits, real 1 / fake 0
        acc.backward(d_loss)
        _, d_skipped = optimizer_step(acc, opt_D, D.parameters(), self.cfg.optim.grad_clip)

        requires_grad(D, False)
        with autocast(acc, self.bf16):
            fake = G(masked)
            adv = g_nonsaturating_loss(acc.unwrap_model(D)(fake, masked))
        rec = l1(fake.float(), gt)
        g_loss = adv + self.cfg.loss.baseline_l1 * rec
        acc.backward(g_loss)
        _, g_skipped = optimizer_step(acc, opt_G, G.parameters(), self.cfg.optim.grad_clip)
        if acc.sync_gradients and not g_skipped:
            ema_update(self.ema["baseline_G"], acc.unwrap_model(G), self.ema_decay)
        return {
            "d_loss": d_loss.detach(),
            "g_adv": adv.detach(),
            "g_l1": rec.detach(),
            "g_loss": g_loss.detach(),
            "skipped": torch.tensor(float(d_skipped or g_skipped)),
        }

    @torch.no_grad()
    def predict(self, batch: dict[str, Tensor], generator: torch.Generator | None = None) -> dict[str, Tensor]:
        rgb = self.ema["baseline_G"](batch["input"]).clamp(-1, 1)
        gray = (0.299 * rgb[:, :1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:]).clamp(-1, 1)
        return {"gray": gray, "rgb": rgb}

    def export(self, out_dir: Path, cfg: TrainConfig) -> Path:
        networks = exportable_networks(self.ema, self.networks, self.accelerator.unwrap_model)
        return export_weights(networks, out_dir, pipeline_meta(cfg))
