"""The `joint` stage: MAT -> luma composite -> colorizer, fine-tuned end to end with both discriminators.

The point of the stage (and of the project): the colorizer is trained on MAT's actual outputs, and the colorizer's
losses reach MAT through the composite. Only the lost pixels of the composite come from MAT, so color losses can
only change what MAT paints, never the known structure.

Step order: both discriminator steps (MAT's with lazy R1 in fp32, the colorizer's PatchGAN) -> one generator
step over MAT and the colorizer with both discriminators frozen and unwrapped -> EMA of both generators.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from accelerate import Accelerator
from torch import Tensor, nn

from restoration.models.colorizer import build_colorizer
from restoration.models.discriminators import build_patch_discriminator
from restoration.models.mat import build_discriminator, build_generator, gray_to_mat_input, mat_output_to_luma
from restoration.tasks.colorization import color_d_loss, color_g_losses
from restoration.tasks.gan_mechanics import (
    ema_decay_from_half_life,
    ema_update,
    make_ema,
    optimizer_step,
    requires_grad,
)
from restoration.tasks.inpainting import (
    G_z_dim,
    autocast,
    build_perceptual,
    inpaint_gray,
    mat_d_loss,
    mat_g_losses,
    mat_inputs,
    pipeline_meta,
)
from restoration.tasks.schedule import apply_lr, lr_factor, make_adam
from restoration.tasks.weights_io import export_weights, exportable_networks, load_init_weights

if TYPE_CHECKING:
    from restoration.train import TrainConfig


def composite(known: Tensor, gray_in: Tensor, mat_rgb: Tensor, color_to_mat: float) -> Tensor:
    """Known pixels from the input, lost ones from MAT's luma; `color_to_mat` scales the gradient that the
    colorizer's losses send back into MAT (1 = fully end to end, 0 = MAT learns only from its own losses)."""
    luma = mat_output_to_luma(mat_rgb)  # (B, 1, H, W)
    if color_to_mat != 1.0:
        luma = luma * color_to_mat + luma.detach() * (1.0 - color_to_mat)
    return known * gray_in + (1.0 - known) * luma


@dataclass
class JointTask:
    cfg: TrainConfig
    accelerator: Accelerator
    networks: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    ema: dict[str, nn.Module]
    ema_decay: float
    bf16: bool
    perceptual: nn.Module | None = None

    @classmethod
    def build(cls, cfg: TrainConfig, accelerator: Accelerator, *, images_per_step: int, bf16: bool) -> JointTask:
        nets = {
            "mat_G": build_generator(cfg.mat),
            "mat_D": build_discriminator(cfg.mat),
            "color_G": build_colorizer(cfg.colorizer),
            "color_D": build_patch_discriminator(cfg.color_disc),
        }
        load_init_weights(nets, cfg.init.from_weights, strict=cfg.init.strict)
        optim = cfg.optim
        lrs = {"mat_G": optim.lr, "color_G": optim.lr, "mat_D": optim.d_lr, "color_D": optim.d_lr}
        return cls(
            cfg=cfg,
            accelerator=accelerator,
            networks=nets,
            optimizers={name: make_adam(net.parameters(), lrs[name], optim) for name, net in nets.items()},
            ema={"mat_G": make_ema(nets["mat_G"]), "color_G": make_ema(nets["color_G"])},
            ema_decay=ema_decay_from_half_life(optim.ema_half_life_images, images_per_step * accelerator.num_processes),
            bf16=bf16,
            perceptual=build_perceptual(cfg),
        )

    def current_lr(self, step: int) -> float:
        return self.cfg.optim.lr * lr_factor(step, self.cfg.run.max_steps, self.cfg.optim)

    def train_step(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        acc, loss_cfg, nets, opts = self.accelerator, self.cfg.loss, self.networks, self.optimizers
        factor = lr_factor(step, self.cfg.run.max_steps, self.cfg.optim)
        for opt in opts.values():
            apply_lr(opt, factor)
        mat_G, mat_D, color_G, color_D = nets["mat_G"], nets["mat_D"], nets["color_G"], nets["color_D"]
        real_gray3 = gray_to_mat_input(batch["gray"])  # (B, 3, H, W)
        masked, known, z, c = mat_inputs(batch, G_z_dim(mat_G, acc))
        out: dict[str, Tensor] = {}

        # discriminator steps on detached fakes
        requires_grad(mat_D, True)
        requires_grad(color_D, True)
        with torch.no_grad(), autocast(acc, self.bf16):
            fake, fake_stg1 = mat_G(
                masked, known, z, c, truncation_psi=loss_cfg.mat_truncation, noise_mode="random", return_stg1=True
            )
            gray_full = composite(known, batch["input"], fake.float(), 1.0)
            rgb = color_G(gray_full)
        r1_step = loss_cfg.r1_gamma > 0 and step % loss_cfg.r1_every == 0
        with autocast(acc, self.bf16 and not r1_step):
            d_mat = mat_d_loss(
                mat_D, real_gray3, fake.float(), fake_stg1.float(), known, c,
                r1_gamma=loss_cfg.r1_gamma, r1_weight=loss_cfg.r1_every if r1_step else 0.0,
            )  # fmt: skip
        acc.backward(d_mat["d_loss"])
        _, skip_mat_d = optimizer_step(acc, opts["mat_D"], mat_D.parameters(), self.cfg.optim.grad_clip)
        out.update(d_mat)
        skip_color_d = False
        if loss_cfg.color_adv > 0:
            with autocast(acc, self.bf16):
                d_color = color_d_loss(color_D, batch["rgb"], rgb.float(), batch["gray"], gray_full, loss_cfg.color_gan)
            acc.backward(d_color["cd_loss"])
            _, skip_color_d = optimizer_step(acc, opts["color_D"], color_D.parameters(), self.cfg.optim.grad_clip)
            out.update(d_color)

        # one generator step through MAT and the colorizer, discriminators frozen and unwrapped
        requires_grad(mat_D, False)
        requires_grad(color_D, False)
        with autocast(acc, self.bf16):
            fake, fake_stg1 = mat_G(
                masked, known, z, c, truncation_psi=loss_cfg.mat_truncation, noise_mode="random", return_stg1=True
            )
            losses = mat_g_losses(self, acc.unwrap_model(mat_D), fake, fake_stg1, real_gray3, known, c, batch)
            gray_full = composite(known, batch["input"], fake.float(), loss_cfg.joint_color_to_mat)
            rgb = color_G(gray_full)
            losses.update(color_g_losses(acc.unwrap_model(color_D), rgb, gray_full, batch["rgb"], loss_cfg))
        g_loss = sum(losses.values())
        acc.backward(g_loss)
        _, skip_mat_g = optimizer_step(acc, opts["mat_G"], mat_G.parameters(), self.cfg.optim.grad_clip)
        _, skip_color_g = optimizer_step(acc, opts["color_G"], color_G.parameters(), self.cfg.optim.grad_clip)
        if acc.sync_gradients:
            if not skip_mat_g:
                ema_update(self.ema["mat_G"], acc.unwrap_model(mat_G), self.ema_decay)
            if not skip_color_g:
                ema_update(self.ema["color_G"], acc.unwrap_model(color_G), self.ema_decay)
        skipped = skip_mat_d or skip_color_d or skip_mat_g or skip_color_g
        return {
            **{k: v.detach() for k, v in out.items()},
            **{f"g_{k}": v.detach() for k, v in losses.items()},
            "g_loss": g_loss.detach(),
            "skipped": torch.tensor(float(skipped)),
        }

    @torch.no_grad()
    def predict(self, batch: dict[str, Tensor], generator: torch.Generator | None = None) -> dict[str, Tensor]:
        gray = inpaint_gray(self.ema["mat_G"], batch, generator)
        return {"gray": gray, "rgb": self.ema["color_G"](gray)}

    def export(self, out_dir: Path, cfg: TrainConfig) -> Path:
        networks = exportable_networks(self.ema, self.networks, self.accelerator.unwrap_model)
        return export_weights(networks, out_dir, pipeline_meta(cfg))
