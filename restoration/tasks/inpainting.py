"""The `inpaint` stage: MAT generator + two-headed discriminator on gray images, the MAT recipe.

Step order (StyleGAN2-ADA / MAT): discriminator step (non-saturating logistic on both heads, with the lazy R1
penalty folded into the same backward every `r1_every` steps, computed in fp32) -> generator step with the
discriminator frozen and called unwrapped (so DDP never sees a forward whose parameters get no gradient) -> EMA.
The MAT functions here are reused by the `joint` stage.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from accelerate import Accelerator
from torch import Tensor, nn

from restoration.config import to_dict
from restoration.losses.adversarial import d_logistic_loss, g_nonsaturating_loss
from restoration.losses.reconstruction import masked_l1
from restoration.models.mat import (
    INFERENCE_TRUNCATION,
    build_discriminator,
    build_generator,
    gray_to_mat_input,
    mat_output_to_luma,
)
from restoration.tasks.gan_mechanics import (
    ema_decay_from_half_life,
    ema_update,
    make_ema,
    optimizer_step,
    requires_grad,
)
from restoration.tasks.schedule import apply_lr, lr_factor, make_adam
from restoration.tasks.weights_io import export_weights, exportable_networks, load_init_weights

if TYPE_CHECKING:
    from restoration.train import TrainConfig


def autocast(accelerator: Accelerator, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on GPUs when enabled; a no-op on CPU (fp32 there)."""
    if not enabled or accelerator.device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16)


def mat_inputs(batch: dict[str, Tensor], z_dim: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(masked 3-channel image, known_mask, z, c) for the MAT generator from a prepared batch."""
    known = batch["known_mask"]
    masked = gray_to_mat_input(batch["input"]) * known  # (B, 3, H, W); MAT masks again internally
    z = torch.randn(known.shape[0], z_dim, device=known.device)
    c = torch.zeros(known.shape[0], 0, device=known.device)
    return masked, known, z, c


def mat_d_loss(
    D: nn.Module,
    real: Tensor,
    fake: Tensor,
    fake_stg1: Tensor,
    known: Tensor,
    c: Tensor,
    *,
    r1_gamma: float,
    r1_weight: float,
) -> dict[str, Tensor]:
    """Logistic loss on both heads for real vs fake, one D forward over the concatenated batch.

    With `r1_weight > 0` (lazy R1 step) the real half is differentiated w.r.t. its inputs and
    `r1_weight * gamma / 2 * ||grad||^2` is added (the caller runs this step in fp32).
    """
    B = real.shape[0]
    real_main = real.detach().requires_grad_(r1_weight > 0)
    real_stg1 = real.detach().requires_grad_(r1_weight > 0)
    imgs = torch.cat([real_main, fake.detach()])  # (2B, 3, H, W)
    imgs_stg1 = torch.cat([real_stg1, fake_stg1.detach()])
    logits, logits_stg1 = D(imgs, torch.cat([known, known]), imgs_stg1, torch.cat([c, c]))
    loss_main = d_logistic_loss(logits[:B], logits[B:])
    loss_stg1 = d_logistic_loss(logits_stg1[:B], logits_stg1[B:])
    out = {"d_loss": loss_main + loss_stg1, "d_real": logits[:B].mean().detach(), "d_fake": logits[B:].mean().detach()}
    if r1_weight > 0:
        grads = torch.autograd.grad(
            [logits[:B].sum(), logits_stg1[:B].sum()], [real_main, real_stg1], create_graph=True
        )
        penalty = sum(g.float().square().sum(dim=(1, 2, 3)) for g in grads).mean()
        out["d_loss"] = out["d_loss"] + penalty * (r1_gamma / 2) * r1_weight
        out["r1"] = penalty.detach()
    return out


def mat_g_adv_loss(D_plain: nn.Module, fake: Tensor, fake_stg1: Tensor, known: Tensor, c: Tensor) -> Tensor:
    """Non-saturating loss on both heads; `D_plain` is the unwrapped (frozen) discriminator."""
    logits, logits_stg1 = D_plain(fake, known, fake_stg1, c)
    return g_nonsaturating_loss(logits) + g_nonsaturating_loss(logits_stg1)


@dataclass
class InpaintTask:
    """MAT G + D trained on gray images with masks; EMA of G is what evaluation and export use."""

    cfg: TrainConfig
    accelerator: Accelerator
    networks: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    ema: dict[str, nn.Module]
    ema_decay: float
    bf16: bool
    perceptual: nn.Module | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, cfg: TrainConfig, accelerator: Accelerator, *, images_per_step: int, bf16: bool) -> InpaintTask:
        G, D = build_generator(cfg.mat), build_discriminator(cfg.mat)
        load_init_weights({"mat_G": G, "mat_D": D}, cfg.init.from_weights, strict=cfg.init.strict)
        optim = cfg.optim
        return cls(
            cfg=cfg,
            accelerator=accelerator,
            networks={"mat_G": G, "mat_D": D},
            optimizers={
                "mat_G": make_adam(G.parameters(), optim.lr, optim),
                "mat_D": make_adam(D.parameters(), optim.d_lr, optim),
            },
            ema={"mat_G": make_ema(G)},
            ema_decay=ema_decay_from_half_life(optim.ema_half_life_images, images_per_step * accelerator.num_processes),
            bf16=bf16,
            perceptual=build_perceptual(cfg),
        )

    def current_lr(self, step: int) -> float:
        return self.cfg.optim.lr * lr_factor(step, self.cfg.run.max_steps, self.cfg.optim)

    def train_step(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        acc, loss_cfg = self.accelerator, self.cfg.loss
        G, D = self.networks["mat_G"], self.networks["mat_D"]
        opt_G, opt_D = self.optimizers["mat_G"], self.optimizers["mat_D"]
        factor = lr_factor(step, self.cfg.run.max_steps, self.cfg.optim)
        apply_lr(opt_G, factor)
        apply_lr(opt_D, factor)
        real = gray_to_mat_input(batch["gray"])  # (B, 3, H, W)
        masked, known, z, c = mat_inputs(batch, G_z_dim(G, acc))

        # discriminator step (+ lazy R1 in fp32)
        requires_grad(D, True)
        with torch.no_grad(), autocast(acc, self.bf16):
            fake, fake_stg1 = G(
                masked, known, z, c, truncation_psi=loss_cfg.mat_truncation, noise_mode="random", return_stg1=True
            )
        r1_step = loss_cfg.r1_gamma > 0 and step % loss_cfg.r1_every == 0
        with autocast(acc, self.bf16 and not r1_step):
            d_out = mat_d_loss(
                D, real, fake.float(), fake_stg1.float(), known, c,
                r1_gamma=loss_cfg.r1_gamma, r1_weight=loss_cfg.r1_every if r1_step else 0.0,
            )  # fmt: skip
        acc.backward(d_out["d_loss"])
        d_norm, d_skipped = optimizer_step(acc, opt_D, D.parameters(), self.cfg.optim.grad_clip)

        # generator step, discriminator frozen and unwrapped
        requires_grad(D, False)
        with autocast(acc, self.bf16):
            fake, fake_stg1 = G(
                masked, known, z, c, truncation_psi=loss_cfg.mat_truncation, noise_mode="random", return_stg1=True
            )
            g_losses = mat_g_losses(self, acc.unwrap_model(D), fake, fake_stg1, real, known, c, batch)
        g_loss = sum(g_losses.values())
        acc.backward(g_loss)
        g_norm, g_skipped = optimizer_step(acc, opt_G, G.parameters(), self.cfg.optim.grad_clip)
        if acc.sync_gradients and not g_skipped:
            ema_update(self.ema["mat_G"], acc.unwrap_model(G), self.ema_decay)
        return {
            **{k: v.detach() for k, v in d_out.items()},
            **{f"g_{k}": v.detach() for k, v in g_losses.items()},
            "g_loss": g_loss.detach(),
            "skipped": torch.tensor(float(d_skipped or g_skipped)),
        }

    @torch.no_grad()
    def predict(self, batch: dict[str, Tensor], generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """EMA inpainting: the composite gray (B, 1, H, W) and, for the score, that gray as RGB."""
        gray = inpaint_gray(self.ema["mat_G"], batch, generator)
        return {"gray": gray, "rgb": gray.expand(-1, 3, -1, -1)}

    def export(self, out_dir: Path, cfg: TrainConfig) -> Path:
        networks = exportable_networks(self.ema, self.networks, self.accelerator.unwrap_model)
        return export_weights(networks, out_dir, pipeline_meta(cfg))


def G_z_dim(G: nn.Module, accelerator: Accelerator) -> int:
    return accelerator.unwrap_model(G).z_dim


def mat_g_losses(
    task: Any, D_plain: nn.Module, fake: Tensor, fake_stg1: Tensor, real: Tensor, known: Tensor, c: Tensor, batch: dict
) -> dict[str, Tensor]:
    """Generator-side MAT losses: adversarial (both heads), hole L1 on luma, optional perceptual."""
    loss_cfg = task.cfg.loss
    losses = {"mat_adv": loss_cfg.mat_adv * mat_g_adv_loss(D_plain, fake, fake_stg1, known, c)}
    if loss_cfg.mat_l1_hole > 0:
        luma = mat_output_to_luma(fake)
        hole = 1.0 - known
        losses["mat_l1"] = loss_cfg.mat_l1_hole * masked_l1(luma.float(), batch["gray"], hole)
    if task.perceptual is not None and loss_cfg.mat_perceptual > 0:
        losses["mat_perceptual"] = loss_cfg.mat_perceptual * task.perceptual(fake.float(), real)
    return losses


def inpaint_gray(G: nn.Module, batch: dict[str, Tensor], generator: torch.Generator | None = None) -> Tensor:
    """Known pixels from the input, lost pixels from MAT's luma: (B, 1, H, W) in [-1, 1]."""
    known = batch["known_mask"]
    masked = gray_to_mat_input(batch["input"]) * known
    z = torch.randn(known.shape[0], G.z_dim, device=known.device, generator=generator)
    c = torch.zeros(known.shape[0], 0, device=known.device)
    out = G(masked, known, z, c, truncation_psi=INFERENCE_TRUNCATION, noise_mode="const", generator=generator)
    return known * batch["input"] + (1.0 - known) * mat_output_to_luma(out.float())


def build_perceptual(cfg: TrainConfig) -> nn.Module | None:
    if cfg.loss.mat_perceptual <= 0:
        return None
    from restoration.losses.perceptual import build_perceptual_loss

    return build_perceptual_loss(cfg.loss.perceptual_weights)


def pipeline_meta(cfg: TrainConfig) -> dict[str, Any]:
    """What a later stage or the predictor needs to rebuild the exported networks."""
    sections = ("mat", "colorizer", "color_disc", "detector", "baseline")
    return {"stage": cfg.stage, "image_size": cfg.data.image_size, **{s: to_dict(getattr(cfg, s)) for s in sections}}
