"""The `colorize` stage: a U-Net colorizer (chroma only) + a PatchGAN conditioned on gray.

Trained on the exact gray of the ground truth (no holes): the colorizer learns color, the inpainter is not
involved. Losses: chroma L1 (YCbCr), adversarial, SSIM and the differentiable hue histogram (a proxy for the
contest's color term C). The colorizer functions here are reused by the `joint` stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from accelerate import Accelerator
from torch import Tensor, nn

from restoration.losses.adversarial import d_hinge_loss, d_logistic_loss, g_hinge_loss, g_nonsaturating_loss
from restoration.losses.hue_histogram import hue_histogram_loss
from restoration.losses.reconstruction import chroma_l1, ssim_loss
from restoration.models.colorizer import build_colorizer
from restoration.models.discriminators import build_patch_discriminator
from restoration.tasks.gan_mechanics import (
    ema_decay_from_half_life,
    ema_update,
    make_ema,
    optimizer_step,
    requires_grad,
)
from restoration.tasks.inpainting import autocast, pipeline_meta
from restoration.tasks.loss_weights import LossConfig
from restoration.tasks.schedule import apply_lr, lr_factor, make_adam
from restoration.tasks.weights_io import export_weights, exportable_networks, load_init_weights

if TYPE_CHECKING:
    from restoration.train import TrainConfig


def color_d_loss(D: nn.Module, real_rgb: Tensor, fake_rgb: Tensor, gray_real: Tensor, gray_fake: Tensor, kind: str):
    """One D forward over [real; fake] pairs (rgb, the gray it was colored from)."""
    B = real_rgb.shape[0]
    logits = D(torch.cat([real_rgb, fake_rgb.detach()]), torch.cat([gray_real, gray_fake.detach()]))
    loss_fn = d_hinge_loss if kind == "hinge" else d_logistic_loss
    return {"cd_loss": loss_fn(logits[:B], logits[B:]), "cd_real": logits[:B].mean().detach()}


def color_g_losses(
    D_plain: nn.Module, rgb: Tensor, gray_in: Tensor, gt_rgb: Tensor, cfg: LossConfig
) -> dict[str, Tensor]:
    """Generator-side colorizer losses; `gray_in` is what the colorizer saw (gradients flow through it in joint)."""
    losses: dict[str, Tensor] = {}
    if cfg.color_adv > 0:
        logits = D_plain(rgb, gray_in)
        adv = g_hinge_loss(logits) if cfg.color_gan == "hinge" else g_nonsaturating_loss(logits)
        losses["color_adv"] = cfg.color_adv * adv
    if cfg.chroma_l1 > 0:
        losses["chroma_l1"] = cfg.chroma_l1 * chroma_l1(rgb.float(), gt_rgb)
    if cfg.ssim > 0:
        losses["ssim"] = cfg.ssim * ssim_loss(rgb.float(), gt_rgb)
    if cfg.hue_hist > 0:
        losses["hue_hist"] = cfg.hue_hist * hue_histogram_loss(rgb.float(), gt_rgb)
    return losses


@dataclass
class ColorizeTask:
    cfg: TrainConfig
    accelerator: Accelerator
    networks: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    ema: dict[str, nn.Module]
    ema_decay: float
    bf16: bool

    @classmethod
    def build(cls, cfg: TrainConfig, accelerator: Accelerator, *, images_per_step: int, bf16: bool) -> ColorizeTask:
        G, D = build_colorizer(cfg.colorizer), build_patch_discriminator(cfg.color_disc)
        load_init_weights({"color_G": G, "color_D": D}, cfg.init.from_weights, strict=cfg.init.strict)
        optim = cfg.optim
        return cls(
            cfg=cfg,
            accelerator=accelerator,
            networks={"color_G": G, "color_D": D},
            optimizers={
                "color_G": make_adam(G.parameters(), optim.lr, optim),
                "color_D": make_adam(D.parameters(), optim.d_lr, optim),
            },
            ema={"color_G": make_ema(G)},
            ema_decay=ema_decay_from_half_life(optim.ema_half_life_images, images_per_step * accelerator.num_processes),
            bf16=bf16,
        )

    def current_lr(self, step: int) -> float:
        return self.cfg.optim.lr * lr_factor(step, self.cfg.run.max_steps, self.cfg.optim)

    def train_step(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        acc, loss_cfg = self.accelerator, self.cfg.loss
        G, D = self.networks["color_G"], self.networks["color_D"]
        opt_G, opt_D = self.optimizers["color_G"], self.optimizers["color_D"]
        factor = lr_factor(step, self.cfg.run.max_steps, self.cfg.optim)
        apply_lr(opt_G, factor)
        apply_lr(opt_D, factor)
        gray, gt = batch["gray"], batch["rgb"]

        d_skipped = False
        out: dict[str, Tensor] = {}
        if loss_cfg.color_adv > 0:
            requires_grad(D, True)
            with torch.no_grad(), autocast(acc, self.bf16):
                fake = G(gray)
            with autocast(acc, self.bf16):
                out = color_d_loss(D, gt, fake.float(), gray, gray, loss_cfg.color_gan)
            acc.backward(out["cd_loss"])
            _, d_skipped = optimizer_step(acc, opt_D, D.parameters(), self.cfg.optim.grad_clip)
            requires_grad(D, False)

        with autocast(acc, self.bf16):
            rgb = G(gray)
            g_losses = color_g_losses(acc.unwrap_model(D), rgb, gray, gt, loss_cfg)
        g_loss = sum(g_losses.values())
        acc.backward(g_loss)
        _, g_skipped = optimizer_step(acc, opt_G, G.parameters(), self.cfg.optim.grad_clip)
        if acc.sync_gradients and not g_skipped:
            ema_update(self.ema["color_G"], acc.unwrap_model(G), self.ema_decay)
        return {
            **{k: v.detach() for k, v in out.items()},
            **{f"g_{k}": v.detach() for k, v in g_losses.items()},
            "g_loss": g_loss.detach(),
            "skipped": torch.tensor(float(d_skipped or g_skipped)),
        }

    @torch.no_grad()
    def predict(self, batch: dict[str, Tensor], generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Colorize the masked input as it is (this stage never learned to inpaint): the score shows what
        coloring alone buys; use `joint` for the full pipeline."""
        gray = batch["input"]
        return {"gray": gray, "rgb": self.ema["color_G"](gray)}

    def export(self, out_dir: Path, cfg: TrainConfig) -> Path:
        networks = exportable_networks(self.ema, self.networks, self.accelerator.unwrap_model)
        return export_weights(networks, out_dir, pipeline_meta(cfg))
