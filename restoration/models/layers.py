"""StyleGAN2-family building blocks that MAT is made of, written for weight compatibility with its checkpoints.

Why these are not stock `nn.Linear` / `nn.Conv2d`: MAT (like StyleGAN2-ADA) stores *unscaled* weights and applies
the equalised-learning-rate gain at run time (weight / sqrt(fan_in), times a learning-rate multiplier), and every
leaky ReLU output is scaled by sqrt(2). Resampling is FIR-filtered (a 4x4 [1,3,3,1] filter stored as a buffer in
every layer) with exact padding rules; a plain `Upsample` + conv would load the weights and compute something else.
Parameter and buffer names follow the official checkpoints, so converting a state dict is (almost) the identity.

Reference: Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (CVPR 2020); Li et al., "MAT:
Mask-Aware Transformer for Large Hole Image Inpainting" (CVPR 2022).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)


def make_fir(taps: tuple[float, ...] = (1.0, 3.0, 3.0, 1.0)) -> Tensor:
    """The separable low-pass filter as a normalised 2-D kernel: (4, 4) for the default taps."""
    t = torch.tensor(taps, dtype=torch.float32)
    f = torch.outer(t, t)
    return f / f.sum()


def activate(x: Tensor, bias: Tensor | None, activation: str, gain: float = 1.0, dim: int = 1) -> Tensor:
    """bias -> activation -> gain; lrelu carries its sqrt(2) gain (times `gain`), linear only `gain`."""
    if bias is not None:
        shape = [-1 if i == dim else 1 for i in range(x.ndim)]
        x = x + bias.to(x.dtype).reshape(shape)  # bf16 activations stay bf16 (an fp32 bias would promote them)
    if activation == "lrelu":
        return F.leaky_relu(x, LRELU_SLOPE) * (LRELU_GAIN * gain)
    if activation != "linear":
        raise ValueError(f"unknown activation {activation!r}")
    return x * gain if gain != 1 else x


def fir_filter(
    x: Tensor, f: Tensor, *, up: int = 1, down: int = 1, pad: tuple[int, int, int, int] = (0, 0, 0, 0), gain: float = 1
) -> Tensor:
    """Upsample by zero insertion, pad (negative = crop), convolve with `f` (a true convolution), subsample.

    `pad` = (left, right, top, bottom) in the upsampled grid. (B, C, H, W) -> (B, C, H', W').
    """
    B, C, H, W = x.shape
    if up > 1:
        x = x.reshape(B, C, H, 1, W, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(B, C, H * up, W * up)
    x0, x1, y0, y1 = pad
    x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    x = x[:, :, max(-y0, 0) : x.shape[2] - max(-y1, 0), max(-x0, 0) : x.shape[3] - max(-x1, 0)]
    kernel = (f * gain).to(x.dtype).flip([0, 1])  # flip: conv2d correlates, the filter is applied as convolution
    kernel = kernel[None, None].repeat(C, 1, 1, 1)
    x = F.conv2d(x, kernel, groups=C)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def upsample2d(x: Tensor, f: Tensor, up: int = 2) -> Tensor:
    """FIR upsampling of an image (the skip path of ToRGB): H, W -> up*H, up*W."""
    fw = f.shape[-1]
    pad = ((fw + up - 1) // 2, (fw - up) // 2)
    return fir_filter(x, f, up=up, pad=(pad[0], pad[1], pad[0], pad[1]), gain=up * up)


def resample_conv(x: Tensor, w: Tensor, f: Tensor, *, up: int = 1, down: int = 1, padding: int = 0, groups: int = 1):
    """Convolution with FIR up/down-sampling, padded once with respect to the upsampled grid.

    w: (out, in / groups, k, k). Up: transposed stride-2 convolution then FIR (gain up^2); down: FIR then stride-2
    convolution (a 1x1 kernel is applied after the FIR subsampling); otherwise a plain padded convolution.
    """
    out_ch, in_per_group, kh, kw = w.shape
    fw = f.shape[-1]
    p0 = p1 = padding
    if up > 1:
        p0 += (fw + up - 1) // 2
        p1 += (fw - up) // 2
    if down > 1:
        p0 += (fw - down + 1) // 2
        p1 += (fw - down) // 2
    if kw == 1 and down > 1 and up == 1:
        x = fir_filter(x, f, down=down, pad=(p0, p1, p0, p1))
        return F.conv2d(x, w, groups=groups)
    if down > 1 and up == 1:
        x = fir_filter(x, f, pad=(p0, p1, p0, p1))
        return F.conv2d(x, w, stride=down, groups=groups)
    if up > 1:
        # transposed conv: swap in/out per group, flip spatially (conv_transpose correlates the other way)
        wt = w.reshape(groups, out_ch // groups, in_per_group, kh, kw).transpose(1, 2)
        wt = wt.reshape(groups * in_per_group, out_ch // groups, kh, kw).flip([2, 3])
        p0 -= kw - 1
        p1 -= kw - up
        pt = max(min(-p0, -p1), 0)
        x = F.conv_transpose2d(x, wt, stride=up, padding=pt, groups=groups)
        return fir_filter(x, f, pad=(p0 + pt, p1 + pt, p0 + pt, p1 + pt), gain=up * up)
    return F.conv2d(x, w, padding=padding, groups=groups)


class FullyConnectedLayer(nn.Module):
    """Equalised-lr linear layer on the last dimension; `weight` (out, in) is stored divided by the lr multiplier."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init))) if bias else None
        self.activation = activation
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight * self.weight_gain
        b = self.bias * self.bias_gain if (self.bias is not None and self.bias_gain != 1) else self.bias
        # F.linear rather than x @ w.t(): same numbers, but the weight gradient keeps the weight's own layout (DDP
        # buckets warn about, and copy, gradients with transposed strides)
        return activate(F.linear(x, w), b, self.activation, dim=x.ndim - 1)


class Conv2dLayer(nn.Module):
    """Equalised-lr convolution with optional FIR up/down-sampling, bias and activation (gain sqrt 2 for lrelu)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        bias: bool = True,
        activation: str = "linear",
        up: int = 1,
        down: int = 1,
    ) -> None:
        super().__init__()
        self.activation, self.up, self.down = activation, up, down
        self.padding = kernel_size // 2
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.register_buffer("resample_filter", make_fir())

    def forward(self, x: Tensor, gain: float = 1.0) -> Tensor:
        w = self.weight * self.weight_gain
        x = resample_conv(x, w.to(x.dtype), self.resample_filter, up=self.up, down=self.down, padding=self.padding)
        return activate(x, self.bias, self.activation, gain=gain)


class ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated convolution: per-sample weights scaled by an affine style, optionally demodulated.

    `weight` keeps the checkpoints' leading singleton dimension: (1, out, in, k, k). Implemented as a grouped
    convolution with one group per sample.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_dim: int,
        *,
        demodulate: bool = True,
        up: int = 1,
        down: int = 1,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        self.out_channels, self.kernel_size = out_channels, kernel_size
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.padding, self.up, self.down, self.demodulate = kernel_size // 2, up, down, demodulate
        self.register_buffer("resample_filter", make_fir())
        self.affine = FullyConnectedLayer(style_dim, in_channels, bias_init=1.0)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        B, C, H, W = x.shape
        with torch.autocast(x.device.type, enabled=False):  # styles and demodulation in fp32 under mixed precision
            s = self.affine(style.float()).view(B, 1, C, 1, 1)
            weight = self.weight * self.weight_gain * s  # (B, out, in, k, k)
            if self.demodulate:
                demod = (weight.pow(2).sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # (B, out)
                weight = weight * demod.view(B, self.out_channels, 1, 1, 1)
        weight = weight.reshape(B * self.out_channels, C, self.kernel_size, self.kernel_size)
        x = x.reshape(1, B * C, H, W)
        x = resample_conv(
            x, weight.to(x.dtype), self.resample_filter, up=self.up, down=self.down, padding=self.padding, groups=B
        )
        return x.reshape(B, self.out_channels, *x.shape[2:])


class StyleConv(nn.Module):
    """Modulated conv -> + noise (random, the stored constant, or none) -> bias + lrelu * sqrt 2."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        style_dim: int,
        resolution: int,
        *,
        kernel_size: int = 3,
        up: int = 1,
        use_noise: bool = True,
        demodulate: bool = True,
    ) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, kernel_size, style_dim, demodulate=demodulate, up=up)
        self.use_noise = use_noise
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(
        self, x: Tensor, style: Tensor, noise_mode: str = "random", generator: torch.Generator | None = None
    ) -> Tensor:
        x = self.conv(x, style)
        if self.use_noise and noise_mode != "none":
            if noise_mode == "random":
                noise = torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device, generator=generator, dtype=x.dtype)
                x = x + noise * self.noise_strength
            elif noise_mode == "const":
                x = x + (self.noise_const * self.noise_strength).to(x.dtype)
            else:
                raise ValueError(f"noise_mode must be 'random', 'const' or 'none', got {noise_mode!r}")
        return activate(x, self.bias, "lrelu")


class ToRGB(nn.Module):
    """1x1 modulated conv without demodulation + bias; adds the FIR-upsampled previous image when given."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("resample_filter", make_fir())

    def forward(self, x: Tensor, style: Tensor, skip: Tensor | None = None) -> Tensor:
        out = activate(self.conv(x, style), self.bias, "linear")
        if skip is not None:
            if skip.shape != out.shape:
                skip = upsample2d(skip, self.resample_filter)
            out = out + skip
        return out


def normalize_2nd_moment(x: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class MappingNet(nn.Module):
    """z -> w: 2nd-moment normalisation, `num_layers` lrelu FCs with lr multiplier 0.01; tracks `w_avg` in
    training (beta 0.995) for truncation; broadcasts w to `num_ws` rows."""

    def __init__(
        self, z_dim: int, w_dim: int, num_ws: int, *, num_layers: int = 8, lr_multiplier: float = 0.01
    ) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws, self.num_layers = z_dim, w_dim, num_ws, num_layers
        self.w_avg_beta = 0.995
        features = [z_dim] + [w_dim] * num_layers
        for i in range(num_layers):
            layer = FullyConnectedLayer(features[i], features[i + 1], activation="lrelu", lr_multiplier=lr_multiplier)
            setattr(self, f"fc{i}", layer)
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: Tensor, truncation_psi: float = 1.0, skip_w_avg_update: bool = False) -> Tensor:
        with torch.autocast(z.device.type, enabled=False):  # w in fp32 under mixed precision (lr multiplier 0.01)
            x = normalize_2nd_moment(z.to(torch.float32))
            for i in range(self.num_layers):
                x = getattr(self, f"fc{i}")(x)
        if self.training and not skip_w_avg_update:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        x = x.unsqueeze(1).repeat(1, self.num_ws, 1)  # (B, num_ws, w_dim)
        if truncation_psi != 1:
            x = self.w_avg.lerp(x, truncation_psi)
        return x


class PartialConv2d(nn.Module):
    """Mask-aware convolution (MAT's variant): the output after bias + activation is rescaled by
    k^2 / (number of known inputs in the window) and zeroed where the window had none; the new mask is 1 wherever
    the window saw a known pixel. The image is not re-masked before the convolution. Up-sampling layers are only
    used without a mask (as in MAT)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, *, activation: str = "lrelu", up: int = 1,
        down: int = 1,
    ) -> None:  # fmt: skip
        super().__init__()
        self.conv = Conv2dLayer(in_channels, out_channels, kernel_size, activation=activation, up=up, down=down)
        self.kernel_size, self.stride = kernel_size, down
        self.padding = kernel_size // 2 if kernel_size % 2 == 1 else 0

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        if mask is None:
            return self.conv(x), None
        with torch.no_grad():
            ones = torch.ones(1, 1, self.kernel_size, self.kernel_size, device=mask.device, dtype=mask.dtype)
            count = F.conv2d(mask, ones, stride=self.stride, padding=self.padding)
            ratio = self.kernel_size**2 / (count + 1e-8)
            new_mask = count.clamp(0, 1)
            ratio = ratio * new_mask
        out = self.conv(x)
        return out * ratio.to(out.dtype), new_mask


class DisFromRGB(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = Conv2dLayer(in_channels, out_channels, 1, activation="lrelu")

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class DisBlock(nn.Module):
    """Residual discriminator block: (skip 1x1/2 + conv3x3 -> conv3x3/2) * sqrt(1/2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = Conv2dLayer(in_channels, in_channels, 3, activation="lrelu")
        self.conv1 = Conv2dLayer(in_channels, out_channels, 3, activation="lrelu", down=2)
        self.skip = Conv2dLayer(in_channels, out_channels, 1, bias=False, down=2)

    def forward(self, x: Tensor) -> Tensor:
        skip = self.skip(x, gain=math.sqrt(0.5))
        return skip + self.conv1(self.conv0(x), gain=math.sqrt(0.5))


class MinibatchStdLayer(nn.Module):
    """Appends the average standard deviation over groups of `group_size` samples (group i = samples i mod n)."""

    def __init__(self, group_size: int, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: Tensor) -> Tensor:
        N, C, H, W = x.shape
        G = min(self.group_size, N)
        Fc = self.num_channels
        y = x.reshape(G, -1, Fc, C // Fc, H, W)  # (G, n, F, c, H, W): group member index first
        y = y - y.mean(dim=0)
        y = (y.square().mean(dim=0) + 1e-8).sqrt()  # (n, F, c, H, W)
        y = y.mean(dim=[2, 3, 4]).reshape(-1, Fc, 1, 1)  # (n, F, 1, 1)
        y = y.repeat(G, 1, H, W)  # (N, F, H, W)
        return torch.cat([x, y], dim=1)
