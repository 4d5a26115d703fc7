"""MAT, the Mask-Aware Transformer for large-hole inpainting (Li et al., CVPR 2022), weight-compatible with the
released checkpoints and numerically equal to the official generator (proved against a golden fixture).

Generator = mapping network (z -> w) + two stages:
1. `first_stage` (coarse): partial-conv head down to a token grid, a U-shaped transformer body *without LayerNorm*
   whose blocks fuse by concatenation instead of residuals, multi-head contextual attention over shifted windows
   with the mask-update rule, style manipulation at the bottleneck (half of the features replaced by a w-derived
   map through an always-on Bernoulli(0.5) draw), and a style-modulated conv tail back to full resolution.
2. refinement: a conv encoder on [mask, stage-1 composite, masked input] + a StyleGAN2-style decoder conditioned on
   w and a global style; a second Bernoulli draw mixes a w-derived map into the 16x16 features.
Both stages paste the known pixels back. The discriminator has two independent heads (final and stage-1 output).

Parameter names equal the official ones; the transformer stage lives in `restoration.models.mat_transformer`. The
always-on feature dropout is reproduced exactly (same draws, same order, same memory layout) from the global RNG, or
from a `generator=` for reproducible inference without touching global state. This module is the architecture only:
the builders return freshly initialised networks; the official-checkpoint side (the released constructors, key
conversion, loading `MATConfig.weights` with `load_mat_weights`) is `restoration.models.mat_checkpoint`, which
imports this module and never the other way round, so building a model cannot read files.

The fill prior (`MATConfig.prior = "fill"`, issue 22): the generator fills the hole with the harmonic fill of the
known pixels (`restoration.models.fill_prior`) and sees that image instead of zeros in the hole (the first layers'
shapes, hence the official weights, are unchanged), and its output is `fill + prior_gain * decoder output` with a
zero-initialised scalar `prior_gain`, so an untrained network returns exactly the fill in the hole and training moves
from there. With the default `"none"` the generator is the official one, parameter for parameter.

Gray images: the official weights are RGB. `gray_to_mat_input` replicates gray to 3 channels (what MAT's own data
loader does for 1-channel images) and `mat_output_to_luma` turns the RGB output back into BT.601 luma.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as activation_checkpoint
from torch import Tensor, nn

from restoration.data.color import rgb_to_luma
from restoration.models.attention import WindowAttention
from restoration.models.fill_prior import harmonic_fill
from restoration.models.layers import (
    Conv2dLayer,
    DisBlock,
    DisFromRGB,
    FullyConnectedLayer,
    Generators,
    MappingNet,
    MinibatchStdLayer,
    PartialConv2d,
    StyleConv,
    ToRGB,
    draw,
    preferred_format,
)
from restoration.models.mat_transformer import BasicLayer, PatchResample, feature2token, token2feature

# -- configuration -------------------------------------------------------------------------------------------------

Preset = Literal["official512", "official256", "small", "tiny"]
Prior = Literal["none", "fill"]


@dataclass
class MATArch:
    """Architecture hyper-parameters. The official checkpoints fix everything but `img_resolution`."""

    img_resolution: int = 512
    img_channels: int = 3
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 8
    dim: int = 180  # first-stage token width
    num_heads: int = 6
    depths: tuple[int, ...] = (2, 3, 4, 3, 2)
    windows: tuple[int, ...] = (8, 16, 16, 16, 8)
    token_res: int = 64  # the transformer's finest grid
    enc_bottom: int = 16  # the refinement encoder's coarsest grid
    channel_base: int = 32768  # widths: min(channel_max, channel_base / resolution)
    channel_max: int = 512
    mbstd_group_size: int = 8

    def nf(self, res_log2: int) -> int:
        return int(min(self.channel_max, self.channel_base >> res_log2))


PRESETS: dict[str, MATArch] = {
    "official512": MATArch(img_resolution=512),
    "official256": MATArch(img_resolution=256),
    # same code, fewer channels: CPU demos at 128-256 px
    "small": MATArch(
        img_resolution=128, z_dim=128, w_dim=128, mapping_layers=4, dim=48, num_heads=3, depths=(1, 2, 2, 2, 1),
        windows=(8, 8, 8, 8, 8), token_res=32, enc_bottom=8, channel_base=4096, channel_max=64, mbstd_group_size=4,
    ),
    # smallest working configuration: unit tests at 64 px
    "tiny": MATArch(
        img_resolution=64, z_dim=32, w_dim=32, mapping_layers=2, dim=24, num_heads=2, depths=(1, 2, 2, 2, 1),
        windows=(4, 8, 8, 8, 4), token_res=16, enc_bottom=4, channel_base=1024, channel_max=32, mbstd_group_size=4,
    ),
}  # fmt: skip


# Truncation psi when *restoring* (evaluation, prediction, the MLflow model): 0 = MAT's mean style (w_avg) for
# every image. The quality study measured psi 0 > 0.5 > 1 on the contest score for both the two-stage and the joint
# pipeline (M, SSIM in the hole, rewards the most likely fill over a sampled texture); 1 is the official default.
INFERENCE_TRUNCATION = 0.0


@dataclass
class MATConfig:
    """Which MAT to build and where its weights come from (the `mat.*` section of a training config)."""

    preset: Preset = "official512"
    img_resolution: int = 0  # 0 = the preset's
    weights: Path | None = None  # converted safetensors (restoration-convert-mat); G, or G + D
    weights_key: Literal["G_ema", "G"] = "G_ema"
    checkpointing: bool = False  # activation checkpointing per transformer stage (saves memory)
    fused_attention: bool = True
    extra: dict[str, int] = field(default_factory=dict)  # architecture overrides, e.g. {dim: 96}
    prior: Prior = "none"  # "fill": start from the harmonic fill and learn a residual on it (module docstring)

    def arch(self) -> MATArch:
        base = PRESETS[self.preset]
        values = {**base.__dict__, **self.extra}
        if self.img_resolution:
            values["img_resolution"] = self.img_resolution
        return MATArch(**values)


# -- the always-on feature dropout ---------------------------------------------------------------------------------


def bernoulli_keep(shape: tuple[int, ...], like: Tensor, generator: Generators) -> Tensor:
    """MAT's always-on feature dropout: a {0, 1} map, 1 with probability 0.5.

    Without a generator it draws exactly like the official `F.dropout(0.5-filled, p=0.5, training=True)` from the
    global RNG (so seeded runs match the released model's behaviour bit for bit); with one, from that generator;
    with one per sample, each sample from its own.
    """
    if generator is None:
        return F.dropout(torch.full(shape, 0.5, device=like.device, dtype=torch.float32), p=0.5, training=True)
    return draw(
        lambda s, g: torch.bernoulli(torch.full(s, 0.5, device=like.device, dtype=torch.float32), generator=g),
        shape,
        generator,
    )


# -- first stage: the transformer ----------------------------------------------------------------------------------


class DecStyleBlock(nn.Module):
    """First-stage tail block: StyleConv up2 -> + encoder skip -> StyleConv -> ToRGB (one style for all)."""

    def __init__(self, res: int, dim: int, style_dim: int, img_channels: int) -> None:
        super().__init__()
        self.conv0 = StyleConv(dim, dim, style_dim, res, up=2, use_noise=False)
        self.conv1 = StyleConv(dim, dim, style_dim, res, use_noise=False)
        self.toRGB = ToRGB(dim, img_channels, style_dim)

    def forward(self, x: Tensor, img: Tensor | None, style: Tensor, skip: Tensor, noise_mode: str):
        x = self.conv0(x, style, noise_mode=noise_mode)
        x = self.conv1(x + skip, style, noise_mode=noise_mode)
        return x, self.toRGB(x, style, skip=img)


class FirstStage(nn.Module):
    def __init__(self, arch: MATArch) -> None:
        super().__init__()
        dim, res = arch.dim, arch.token_res
        self.checkpointing = False
        self.masks_input = True  # False with the fill prior: the hole holds the fill, which the first layer reads
        self.conv_first = PartialConv2d(arch.img_channels + 1, dim, 3)
        down_times = int(math.log2(arch.img_resolution // arch.token_res))
        self.enc_conv = nn.ModuleList(PartialConv2d(dim, dim, 3, down=2) for _ in range(down_times))
        ratios = (1, 0.5, 0.5, 2, 2)
        self.tran = nn.ModuleList()
        for i, depth in enumerate(arch.depths):
            res = int(res * ratios[i])
            resample = None
            if ratios[i] < 1:
                resample = PatchResample(dim, down=int(1 / ratios[i]))
            elif ratios[i] > 1:
                resample = PatchResample(dim, up=int(ratios[i]))
            self.tran.append(BasicLayer(dim, res, depth, arch.num_heads, arch.windows[i], resample))
        bottleneck = arch.token_res // 4
        self.bottleneck_tokens = bottleneck * bottleneck
        down = [Conv2dLayer(dim, dim, 3, activation="lrelu", down=2) for _ in range(int(math.log2(bottleneck)))]
        self.down_conv = nn.Sequential(*down, nn.AdaptiveAvgPool2d((1, 1)))
        self.to_style = FullyConnectedLayer(dim, dim * 2, activation="lrelu")
        self.ws_style = FullyConnectedLayer(arch.w_dim, dim, activation="lrelu")
        self.to_square = FullyConnectedLayer(dim, self.bottleneck_tokens, activation="lrelu")
        self.dec_conv = nn.ModuleList()
        for _ in range(down_times):
            res = res * 2
            self.dec_conv.append(DecStyleBlock(res, dim, dim * 3, arch.img_channels))

    def forward(
        self,
        img: Tensor,
        known: Tensor,
        ws: Tensor,
        noise_mode: str = "random",
        generator: Generators = None,
    ) -> Tensor:
        seen = img * known if self.masks_input else img
        x = torch.cat([known - 0.5, seen], dim=1).contiguous(memory_format=preferred_format(img))
        skips = []
        x, mask = self.conv_first(x, known)
        skips.append(x)
        for i, block in enumerate(self.enc_conv):
            x, mask = block(x, mask)
            if i != len(self.enc_conv) - 1:
                skips.append(x)
        size = (x.shape[-2], x.shape[-1])
        x, mask = feature2token(x), feature2token(mask)
        mid = len(self.tran) // 2
        for i, block in enumerate(self.tran):
            if i < mid:
                x, size, mask = self._run(block, x, size, mask)
                skips.append(x)
            elif i > mid:
                x, size, _ = self._run(block, x, size, None)
                x = x + skips[mid - i]
            else:
                x, size, _ = self._run(block, x, size, None)
                B, N, C = x.shape
                keep = bernoulli_keep((B, C, N), x, generator).transpose(1, 2).to(x.dtype)  # drawn channel-major
                w_style = self.ws_style(ws[:, -1])
                noise_map = self.to_square(w_style).unsqueeze(1)  # (B, 1, bottleneck tokens)
                noise_map = F.interpolate(noise_map, size=N, mode="linear", align_corners=False)
                noise_map = noise_map.squeeze(1).unsqueeze(-1)  # (B, N, 1)
                x = x * keep + noise_map * (1 - keep)
                global_style = self.to_style(self.down_conv(token2feature(x, size)).flatten(start_dim=1))
                style = torch.cat([global_style, w_style], dim=1)
        x = token2feature(x, size)
        img_out = None
        for i, block in enumerate(self.dec_conv):
            x, img_out = block(x, img_out, style, skips[len(self.dec_conv) - i - 1], noise_mode)
        return img_out * (1 - known) + img * known

    def _run(self, block: BasicLayer, x: Tensor, size: tuple[int, int], mask: Tensor | None):
        if self.checkpointing and torch.is_grad_enabled():
            return activation_checkpoint.checkpoint(block, x, size, mask, use_reentrant=False)
        return block(x, size, mask)


# -- second stage: conv encoder + StyleGAN2 decoder ----------------------------------------------------------------


class EncFromRGB(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = Conv2dLayer(in_channels, out_channels, 1, activation="lrelu")
        self.conv1 = Conv2dLayer(out_channels, out_channels, 3, activation="lrelu")

    def forward(self, x: Tensor) -> Tensor:
        return self.conv1(self.conv0(x))


class ConvBlockDown(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = Conv2dLayer(in_channels, out_channels, 3, activation="lrelu", down=2)
        self.conv1 = Conv2dLayer(out_channels, out_channels, 3, activation="lrelu")

    def forward(self, x: Tensor) -> Tensor:
        return self.conv1(self.conv0(x))


class Encoder(nn.Module):
    """Full resolution down to `enc_bottom`; returns features keyed by log2(resolution)."""

    def __init__(self, arch: MATArch) -> None:
        super().__init__()
        top, bottom = int(math.log2(arch.img_resolution)), int(math.log2(arch.enc_bottom))
        self.levels = list(range(top, bottom - 1, -1))
        for r in self.levels:
            block = (
                EncFromRGB(arch.img_channels * 2 + 1, arch.nf(r))
                if r == top
                else ConvBlockDown(arch.nf(r + 1), arch.nf(r))
            )
            setattr(self, f"EncConv_Block_{2**r}x{2**r}", block)

    def forward(self, x: Tensor) -> dict[int, Tensor]:
        out = {}
        for r in self.levels:
            x = getattr(self, f"EncConv_Block_{2**r}x{2**r}")(x)
            out[r] = x
        return out


class ToStyle(nn.Module):
    def __init__(self, channels: int, out_features: int, num_convs: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            *[Conv2dLayer(channels, channels, 3, activation="lrelu", down=2) for _ in range(num_convs)]
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = FullyConnectedLayer(channels, out_features, activation="lrelu")

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.conv(x)).flatten(start_dim=1))


class DecBlockFirst(nn.Module):
    def __init__(self, res_log2: int, channels: int, style_dim: int, img_channels: int) -> None:
        super().__init__()
        self.res = res_log2
        self.conv0 = Conv2dLayer(channels, channels, 3, activation="lrelu")
        self.conv1 = StyleConv(channels, channels, style_dim, 2**res_log2)
        self.toRGB = ToRGB(channels, img_channels, style_dim)

    def forward(self, x, ws, gs, feats, noise_mode, generator):
        x = self.conv0(x) + feats[self.res]
        x = self.conv1(x, torch.cat([ws[:, 0], gs], dim=1), noise_mode=noise_mode, generator=generator)
        return x, self.toRGB(x, torch.cat([ws[:, 1], gs], dim=1))


class DecBlock(nn.Module):
    def __init__(self, res_log2: int, first_log2: int, in_ch: int, out_ch: int, style_dim: int, img_ch: int) -> None:
        super().__init__()
        self.w_index = 2 * (res_log2 - first_log2) - 1  # rows of w used: index, index + 1, index + 2
        self.res = res_log2
        self.conv0 = StyleConv(in_ch, out_ch, style_dim, 2**res_log2, up=2)
        self.conv1 = StyleConv(out_ch, out_ch, style_dim, 2**res_log2)
        self.toRGB = ToRGB(out_ch, img_ch, style_dim)

    def forward(self, x, img, ws, gs, feats, noise_mode, generator):
        i = self.w_index
        x = self.conv0(x, torch.cat([ws[:, i], gs], dim=1), noise_mode=noise_mode, generator=generator)
        x = x + feats[self.res]
        x = self.conv1(x, torch.cat([ws[:, i + 1], gs], dim=1), noise_mode=noise_mode, generator=generator)
        return x, self.toRGB(x, torch.cat([ws[:, i + 2], gs], dim=1), skip=img)


class Decoder(nn.Module):
    def __init__(self, arch: MATArch, style_dim: int) -> None:
        super().__init__()
        self.first, self.top = int(math.log2(arch.enc_bottom)), int(math.log2(arch.img_resolution))
        b = self.first
        setattr(self, f"Dec_{2**b}x{2**b}", DecBlockFirst(b, arch.nf(b), style_dim, arch.img_channels))
        for r in range(b + 1, self.top + 1):
            block = DecBlock(r, b, arch.nf(r - 1), arch.nf(r), style_dim, arch.img_channels)
            setattr(self, f"Dec_{2**r}x{2**r}", block)

    def forward(self, x, ws, gs, feats, noise_mode, generator) -> Tensor:
        b = self.first
        x, img = getattr(self, f"Dec_{2**b}x{2**b}")(x, ws, gs, feats, noise_mode, generator)
        for r in range(b + 1, self.top + 1):
            x, img = getattr(self, f"Dec_{2**r}x{2**r}")(x, img, ws, gs, feats, noise_mode, generator)
        return img


class SynthesisNet(nn.Module):
    def __init__(self, arch: MATArch, prior: Prior = "none") -> None:
        super().__init__()
        self.arch, self.prior = arch, prior
        top, bottom = int(math.log2(arch.img_resolution)), int(math.log2(arch.enc_bottom))
        self.num_ws = 2 * (top - bottom) + 2
        self.first_stage = FirstStage(arch)
        self.enc = Encoder(arch)
        self.to_square = FullyConnectedLayer(arch.w_dim, arch.enc_bottom**2, activation="lrelu")
        gs_dim = arch.channel_max * 2
        self.to_style = ToStyle(arch.nf(bottom), gs_dim, max(1, bottom - 1))
        self.dec = Decoder(arch, arch.w_dim + gs_dim)
        if prior == "fill":
            self.first_stage.masks_input = False
            self.prior_gain = nn.Parameter(torch.zeros(()))  # 0: the untrained generator returns the fill

    def forward(self, img, known, ws, noise_mode="random", return_stg1=False, generator=None):
        if self.prior == "fill":
            img = harmonic_fill(img, known)  # (B, C, H, W): the known pixels, the fill in the hole
        out_stg1 = self.first_stage(img, known, ws, noise_mode=noise_mode, generator=generator)
        x = img * known + out_stg1 * (1 - known)
        x = torch.cat([known - 0.5, x, img if self.prior == "fill" else img * known], dim=1)
        feats = self.enc(x.contiguous(memory_format=preferred_format(x)))
        bottom = self.enc.levels[-1]
        fea = feats[bottom]
        keep = bernoulli_keep(tuple(fea.shape), fea, generator).to(fea.dtype)
        side = self.arch.enc_bottom
        noise_map = self.to_square(ws[:, 0]).view(-1, 1, side, side)
        noise_map = F.interpolate(noise_map, size=fea.shape[-2:], mode="bilinear", align_corners=False)
        fea = fea * keep + noise_map * (1 - keep)
        feats[bottom] = fea
        gs = self.to_style(fea)
        out = self.dec(fea, ws, gs, feats, noise_mode, generator)
        if self.prior == "fill":
            out = img + self.prior_gain * out  # the fill plus a learnt residual
        out = out * (1 - known) + img * known
        return (out, out_stg1) if return_stg1 else out


class Generator(nn.Module):
    """MAT generator. Call as the official code: `G(img, known_mask, z, c, truncation_psi=1, noise_mode='const')`,
    img (B, 3, H, W) in [-1, 1], known_mask (B, 1, H, W) with 1 = known; returns the composited image (and the
    stage-1 composite with `return_stg1=True`). With `prior="fill"` the hole starts from its harmonic fill (module
    docstring)."""

    def __init__(self, arch: MATArch, *, prior: Prior = "none") -> None:
        super().__init__()
        self.arch = arch
        self.z_dim, self.c_dim, self.w_dim = arch.z_dim, 0, arch.w_dim
        self.img_resolution, self.img_channels = arch.img_resolution, arch.img_channels
        self.synthesis = SynthesisNet(arch, prior)
        self.mapping = MappingNet(arch.z_dim, arch.w_dim, self.synthesis.num_ws, num_layers=arch.mapping_layers)

    def forward(
        self,
        img: Tensor,
        known_mask: Tensor,
        z: Tensor,
        c: Tensor | None = None,
        truncation_psi: float = 1,
        truncation_cutoff: int | None = None,
        skip_w_avg_update: bool = False,
        noise_mode: str = "random",
        return_stg1: bool = False,
        generator: Generators = None,
    ):
        if truncation_cutoff is not None:
            raise NotImplementedError("truncation_cutoff is not supported (MAT never uses it)")
        ws = self.mapping(z, truncation_psi=truncation_psi, skip_w_avg_update=skip_w_avg_update)
        return self.synthesis(img, known_mask, ws, noise_mode=noise_mode, return_stg1=return_stg1, generator=generator)

    def set_checkpointing(self, enabled: bool) -> None:
        self.synthesis.first_stage.checkpointing = enabled

    def set_fused_attention(self, enabled: bool) -> None:
        for module in self.modules():
            if isinstance(module, WindowAttention):
                module.use_fused = enabled


class Discriminator(nn.Module):
    """Two independent residual discriminators on [mask - 0.5, image]: `Dis` on the final output and `Dis_stg1`
    (half width) on the stage-1 output. `D(img, known_mask, img_stg1, c) -> (logits, logits_stg1)`, each (B, 1)."""

    def __init__(self, arch: MATArch) -> None:
        super().__init__()
        top = int(math.log2(arch.img_resolution))
        self.Dis = self._head(arch, top, 1)
        self.fc0 = FullyConnectedLayer(arch.nf(2) * 16, arch.nf(2), activation="lrelu")
        self.fc1 = FullyConnectedLayer(arch.nf(2), 1)
        self.Dis_stg1 = self._head(arch, top, 2)
        self.fc0_stg1 = FullyConnectedLayer(arch.nf(2) // 2 * 16, arch.nf(2) // 2, activation="lrelu")
        self.fc1_stg1 = FullyConnectedLayer(arch.nf(2) // 2, 1)

    @staticmethod
    def _head(arch: MATArch, top: int, divide: int) -> nn.Sequential:
        layers: list[nn.Module] = [DisFromRGB(arch.img_channels + 1, arch.nf(top) // divide)]
        for r in range(top, 2, -1):
            layers.append(DisBlock(arch.nf(r) // divide, arch.nf(r - 1) // divide))
        layers.append(MinibatchStdLayer(arch.mbstd_group_size))
        layers.append(Conv2dLayer(arch.nf(2) // divide + 1, arch.nf(2) // divide, 3, activation="lrelu"))
        return nn.Sequential(*layers)

    def forward(self, img: Tensor, known_mask: Tensor, img_stg1: Tensor, c: Tensor | None = None):
        layout = preferred_format(img)
        x = self.Dis(torch.cat([known_mask - 0.5, img], dim=1).contiguous(memory_format=layout))
        x = self.fc1(self.fc0(x.flatten(start_dim=1)))  # flatten NCHW: channel-major, as MAT
        y = self.Dis_stg1(torch.cat([known_mask - 0.5, img_stg1], dim=1).contiguous(memory_format=layout))
        y = self.fc1_stg1(self.fc0_stg1(y.flatten(start_dim=1)))
        return x, y


# -- builders, gray helpers ----------------------------------------------------------------------------------------


def build_generator(cfg: MATConfig) -> Generator:
    """The architecture `cfg` names, freshly initialised (`cfg.weights` is loaded by
    `mat_checkpoint.load_mat_weights`)."""
    G = Generator(cfg.arch(), prior=cfg.prior)
    G.set_checkpointing(cfg.checkpointing)
    G.set_fused_attention(cfg.fused_attention)
    return G


def build_discriminator(cfg: MATConfig) -> Discriminator:
    """The discriminator for `cfg`'s architecture, freshly initialised."""
    return Discriminator(cfg.arch())


def mat_inputs(
    gray_in: Tensor, known: Tensor, z_dim: int, generator: Generators = None
) -> tuple[Tensor, Tensor, Tensor]:
    """MAT's input recipe for a gray image, the one place training and inference take it from: (the masked
    3-channel image, z, c). z comes from the global RNG (training) or from `generator` (reproducible inference).
    The generator's fill prior, when on, fills the hole from the known pixels inside the network, so it reads the
    same input."""
    masked = gray_to_mat_input(gray_in) * known  # (B, 3, H, W); MAT masks again internally
    z = draw(lambda s, g: torch.randn(s, device=known.device, generator=g), (known.shape[0], z_dim), generator)
    c = torch.zeros(known.shape[0], 0, device=known.device)
    return masked, z, c


def gray_to_mat_input(gray: Tensor) -> Tensor:
    """(B, 1, H, W) gray in [-1, 1] -> (B, 3, H, W): the official RGB weights see gray as R = G = B."""
    return gray.expand(-1, 3, -1, -1)


def mat_output_to_luma(img: Tensor) -> Tensor:
    """(B, 3, H, W) MAT output in [-1, 1] -> (B, 1, H, W) BT.601 luma (the same weights as PIL's 'L')."""
    return rgb_to_luma(img)
