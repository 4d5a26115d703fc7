"""MAT's training step, ours and the official recipe's, on the same weights and inputs: what the speed benchmarks time.

Used by `benchmarks/gpu_check.py` (GPU figures) and `benchmarks/mat_vs_official.py` (CPU side by side). Not part of
the package: it imports the official code from a directory given at run time and never copies it.

- `build_official(dir, res)`: the official `networks/mat.py` Generator and Discriminator (commit d273d89) as the
  official training builds them; `build_ours(res)` / `build_ours_like(G, D)`: ours, with the official weights
  copied in, so both sides compute the same function.
- `OurStep`: one iteration of the trainer's `inpaint` stage (`InpaintStage.train_step`: D step with the lazy R1
  folded in every 16 steps, G step, EMA), exactly the code `restoration-train` runs.
- `OfficialStep`: the official training loop's phases re-stated in our words around *their* networks: Gmain (G
  forward, D on the fakes, non-saturating loss, backward, Adam), Dmain (G forward, D on fakes, backward, D on reals,
  backward, Adam), Dreg every 16 iterations (a separate D pass on reals with the R1 penalty, gain 16), G_ema; style
  mixing with probability 0.9. Both sides leave out the perceptual (VGG) term, which needs downloaded weights; the
  official Greg phase is empty in MAT (its path-length code is commented out) and its statistics reporting is left
  out.
- `g_fwd_bwd`, `d_fwd_bwd`, `d_r1`: the network-level workloads (the issue's first measurement).
"""

from __future__ import annotations

import copy
import inspect
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restoration.config import load_config
from restoration.models.mat import MATConfig, build_discriminator, build_generator
from restoration.models.mat_checkpoint import convert_official_state_dict
from restoration.recipe import TrainConfig

R1_EVERY = 16
TRUNCATION = 0.5
MBSTD = 8  # places512 / celeba512 recipes


# -- networks ------------------------------------------------------------------------------------------------------


def build_official(official_dir: Path, res: int, *, custom_ops: bool = False) -> tuple[nn.Module, nn.Module]:
    """The official G and D. Their `bias_act`/`upfirdn2d` CUDA plugins are compiled at first use on a GPU (minutes,
    needs nvcc); unless `custom_ops`, the reference implementations are forced, which is what they fall back to
    whenever the plugins cannot be built (and always on CPU)."""
    official_dir = Path(official_dir).resolve()
    if str(official_dir) not in sys.path:
        sys.path.insert(0, str(official_dir))
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)  # timm.models.layers is deprecated
    from networks.mat import Discriminator, Generator  # the official code, imported from official_dir
    from torch_utils.ops import bias_act, upfirdn2d

    if not custom_ops:
        bias_act._init = lambda: False
        upfirdn2d._init = lambda: False
    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=res, img_channels=3)
    D = Discriminator(c_dim=0, img_resolution=res, img_channels=3, mbstd_group_size=MBSTD)
    return G, D


def build_ours(preset: str = "official512", res: int = 0) -> tuple[nn.Module, nn.Module]:
    cfg = MATConfig(preset=preset, img_resolution=res)  # the official presets' minibatch-std group is MBSTD
    return build_generator(cfg), build_discriminator(cfg)


def copy_official_weights(official: nn.Module, ours: nn.Module) -> nn.Module:
    return copy_official_weights_from_state(official.state_dict(), ours)


def copy_official_weights_from_state(state: dict[str, Tensor], ours: nn.Module) -> nn.Module:
    ours.load_state_dict(convert_official_state_dict(state))
    return ours


def _maps_with_c(G: nn.Module) -> bool:
    return "c" in inspect.signature(G.mapping.forward).parameters


# -- inputs --------------------------------------------------------------------------------------------------------


@dataclass
class Batch:
    real: Tensor  # (B, 3, H, W) gray replicated, [-1, 1]
    gray: Tensor  # (B, 1, H, W)
    known: Tensor  # (B, 1, H, W) 1 = known
    z: Tensor  # (B, z_dim)

    def for_stage(self) -> dict[str, Tensor]:
        """What `prepare_batch` hands a stage."""
        return {"gray": self.gray, "rgb": self.real, "known_mask": self.known,
                "input": self.known * self.gray - (1 - self.known) * 0.8}  # fmt: skip


def make_batch(batch: int, res: int, z_dim: int, device: torch.device | str, seed: int = 0) -> Batch:
    """Smooth gray images and one contest-sized rectangle hole each (the same for every implementation)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(batch, 1, 8, 8, generator=g) * 2 - 1
    gray = F.interpolate(low, size=(res, res), mode="bicubic", align_corners=False).clamp(-1, 1)
    known = torch.ones(batch, 1, res, res)
    for i in range(batch):
        h, w = (torch.randint(res // 6, res // 2, (2,), generator=g)).tolist()
        y, x = torch.randint(0, res - h, (1,), generator=g).item(), torch.randint(0, res - w, (1,), generator=g).item()
        known[i, :, y : y + h, x : x + w] = 0
    z = torch.randn(batch, z_dim, generator=g)
    gray = gray.to(device)
    return Batch(real=gray.expand(-1, 3, -1, -1).contiguous(), gray=gray, known=known.to(device), z=z.to(device))


# -- the two recipes -----------------------------------------------------------------------------------------------


class OurStep:
    """`InpaintStage.train_step` on given networks (the official weights copied in), MAT's pure recipe: adversarial
    on both heads, R1 gamma 10 every 16 steps, no hole L1, no perceptual term."""

    def __init__(self, G: nn.Module, D: nn.Module, device: torch.device, *, bf16: bool, batch: int) -> None:
        from accelerate import Accelerator

        from restoration.tasks.inpaint import InpaintStage
        from restoration.tasks.parts import assemble

        overrides = ["stage=inpaint", "loss.mat_l1_hole=0", "loss.mat_perceptual=0", f"loss.r1_every={R1_EVERY}",
                     f"loss.mat_truncation={TRUNCATION}", "optim.lr=2e-3", "optim.d_lr=2e-3",
                     "optim.ema_half_life_images=10000"]  # fmt: skip
        cfg = load_config(TrainConfig, None, overrides)
        accelerator = Accelerator(cpu=device.type == "cpu", mixed_precision="no")
        G, D = G.to(device), D.to(device)
        parts = assemble(cfg, accelerator, {"mat_G": G, "mat_D": D}, ema=("mat_G",), images_per_step=batch, bf16=bf16)
        parts.ema["mat_G"].to(device)
        self.stage = InpaintStage(parts, cfg.loss, None)
        self.step_index = 1

    def __call__(self, batch: Batch, r1: bool) -> None:
        self.stage.train_step(batch.for_stage(), 0 if r1 else self.step_index)
        self.step_index = self.step_index + 1 if (self.step_index + 1) % R1_EVERY else self.step_index + 2


class OfficialStep:
    """The official training loop's phases for one iteration (see the module docstring)."""

    def __init__(self, G: nn.Module, D: nn.Module, device: torch.device, *, batch: int) -> None:
        self.G, self.D = G.to(device).train().requires_grad_(False), D.to(device).train().requires_grad_(False)
        self.G_ema = copy.deepcopy(self.G).eval()
        # the official lazy-regularisation adjustment of Adam (mb_ratio) changes no cost
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=2e-3, betas=(0.0, 0.99), eps=1e-8)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=2e-3, betas=(0.0, 0.99), eps=1e-8)
        self.with_c = _maps_with_c(self.G)
        self.ema_beta = 0.5 ** (batch / 10_000)
        self.device = device

    def _mapping(self, z: Tensor, c: Tensor, **kwargs) -> Tensor:
        return self.G.mapping(z, c, **kwargs) if self.with_c else self.G.mapping(z, **kwargs)

    def run_G(self, b: Batch, c: Tensor) -> tuple[Tensor, Tensor]:
        ws = self._mapping(b.z, c, truncation_psi=TRUNCATION)
        cutoff = torch.empty([], dtype=torch.int64, device=ws.device).random_(1, ws.shape[1])
        cutoff = torch.where(torch.rand([], device=ws.device) < 0.9, cutoff, torch.full_like(cutoff, ws.shape[1]))
        mixed = self._mapping(torch.randn_like(b.z), c, truncation_psi=TRUNCATION, skip_w_avg_update=True)
        ws[:, cutoff:] = mixed[:, cutoff:]
        return self.G.synthesis(b.real, b.known, ws, return_stg1=True)

    def _phase(self, module: nn.Module, opt: torch.optim.Optimizer, body) -> None:
        opt.zero_grad(set_to_none=True)
        module.requires_grad_(True)
        body()
        module.requires_grad_(False)
        for p in module.parameters():
            if p.grad is not None:
                torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
        opt.step()

    def __call__(self, b: Batch, r1: bool) -> None:
        c = torch.zeros(b.real.shape[0], 0, device=self.device)

        def g_main():
            img, img_stg1 = self.run_G(b, c)
            logits, logits_stg1 = self.D(img, b.known, img_stg1, c)
            (F.softplus(-logits) + F.softplus(-logits_stg1)).mean().backward()

        def d_main():
            img, img_stg1 = self.run_G(b, c)
            logits, logits_stg1 = self.D(img, b.known, img_stg1, c)
            (F.softplus(logits) + F.softplus(logits_stg1)).mean().backward()
            real_logits, real_logits_stg1 = self.D(b.real, b.known, b.real, c)
            ((real_logits + real_logits_stg1) * 0 + F.softplus(-real_logits) + F.softplus(-real_logits_stg1)
             ).mean().backward()  # fmt: skip

        def d_reg():
            real = b.real.detach().requires_grad_(True)
            real_stg1 = b.real.detach().requires_grad_(True)
            logits, logits_stg1 = self.D(real, b.known, real_stg1, c)
            (g,) = torch.autograd.grad([logits.sum()], [real], create_graph=True)
            (g1,) = torch.autograd.grad([logits_stg1.sum()], [real_stg1], create_graph=True)
            penalty = g.square().sum([1, 2, 3]) * 5.0 + g1.square().sum([1, 2, 3]) * 5.0
            ((logits + logits_stg1) * 0 + penalty).mean().mul(R1_EVERY).backward()

        self._phase(self.G, self.opt_G, g_main)
        self._phase(self.D, self.opt_D, d_main)
        if r1:
            self._phase(self.D, self.opt_D, d_reg)
        with torch.no_grad():
            for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
                p_ema.copy_(p.lerp(p_ema, self.ema_beta))
            for b_ema, buf in zip(self.G_ema.buffers(), self.G.buffers()):
                b_ema.copy_(buf)


# -- network-level workloads ---------------------------------------------------------------------------------------


def g_fwd_bwd(G: nn.Module, b: Batch) -> Tensor:
    """Generator forward (both outputs) + backward of a simple loss: the generator's share of a G step."""
    c = torch.zeros(b.real.shape[0], 0, device=b.real.device)
    out, out_stg1 = G(b.real * b.known, b.known, b.z, c, truncation_psi=1, noise_mode="const", return_stg1=True)
    (out.square().mean() + out_stg1.square().mean()).backward()
    return out.detach()


def d_fwd_bwd(D: nn.Module, b: Batch, *, r1: bool = False) -> Tensor:
    """Discriminator forward + backward on the real images; with `r1` the R1 penalty's double backward too."""
    c = torch.zeros(b.real.shape[0], 0, device=b.real.device)
    real = b.real.detach().requires_grad_(r1)
    real_stg1 = b.real.detach().requires_grad_(r1)
    logits, logits_stg1 = D(real, b.known, real_stg1, c)
    loss = F.softplus(-logits).mean() + F.softplus(-logits_stg1).mean()
    if r1:
        grads = torch.autograd.grad([logits.sum(), logits_stg1.sum()], [real, real_stg1], create_graph=True)
        loss = loss + sum(g.square().sum([1, 2, 3]) for g in grads).mean() * 5.0
    loss.backward()
    return torch.cat([logits, logits_stg1], dim=1).detach()


# -- timing --------------------------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def amortized_step_s(normal_s: float, r1_s: float) -> float:
    """Mean seconds per iteration when one in R1_EVERY iterations also takes the R1 penalty."""
    return ((R1_EVERY - 1) * normal_s + r1_s) / R1_EVERY


def count_flops(fn) -> int:
    """FLOPs of the matrix products and convolutions `fn` runs (forward and backward), by torch's counter."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def median(values: list[float]) -> float:
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def gmean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))
