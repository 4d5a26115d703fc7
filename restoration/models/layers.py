"""StyleGAN2-family building blocks that MAT is made of, written for weight compatibility with its checkpoints.

Why these are not stock `nn.Linear` / `nn.Conv2d`: MAT (like StyleGAN2-ADA) stores *unscaled* weights and applies
the equalised-learning-rate gain at run time (weight / sqrt(fan_in), times a learning-rate multiplier), and every
leaky ReLU output is scaled by sqrt(2). Resampling is FIR-filtered (a 4x4 [1,3,3,1] filter stored as a buffer in
every layer) with exact padding rules; a plain `Upsample` + conv would load the weights and compute something else.
Parameter and buffer names follow the official checkpoints, so converting a state dict is (almost) the identity.

The same function as the official code (float64 agrees to 1e-15; fp32 within the golden fixture's tolerances), in
fewer passes over the activations: the equalised-lr and activation gains scale the weight and bias (or the output,
when it is smaller than the weight), the bias is added by the convolution and the activation runs in place
(`act_gain`, `act_`; `activate` is the three-pass reference); the FIR filter is a depthwise convolution whose
hand-written adjoint keeps the R1 penalty's double backward a few convolutions (`FIRFilter`); several samples share
one convolution (non-fused modulation); activations are channels-last on GPUs (`preferred_format`).

Reference: Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (CVPR 2020); Li et al., "MAT:
Mask-Aware Transformer for Large Hole Image Inpainting" (CVPR 2022).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Generators = torch.Generator | list[torch.Generator] | None  # one stream for the batch, or one per sample


def draw(
    sample: Callable[[tuple[int, ...], torch.Generator | None], Tensor], shape: tuple[int, ...], generator: Generators
) -> Tensor:
    """A random tensor whose first dimension is the batch: from the global RNG or one generator as a whole, or, with
    one generator per sample, each sample's slice from its own stream (so an image's draws do not depend on what
    else is in the batch)."""
    if not isinstance(generator, list):
        return sample(shape, generator)
    if len(generator) != shape[0]:
        raise ValueError(f"{len(generator)} generators for a batch of {shape[0]}")
    return torch.cat([sample((1, *shape[1:]), g) for g in generator])


LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)


def make_fir(taps: tuple[float, ...] = (1.0, 3.0, 3.0, 1.0)) -> Tensor:
    """The separable low-pass filter as a normalised 2-D kernel: (4, 4) for the default taps."""
    t = torch.tensor(taps, dtype=torch.get_default_dtype())
    f = torch.outer(t, t)
    return f / f.sum()


def activate(x: Tensor, bias: Tensor | None, activation: str, gain: float = 1.0, dim: int = 1) -> Tensor:
    """bias -> activation -> gain, as the official `bias_act` computes it (three passes): the reference that the
    layers below fold into their convolutions (`act_gain`, `act_`) and the tests compare them with."""
    if bias is not None:
        shape = [-1 if i == dim else 1 for i in range(x.ndim)]
        x = x + bias.to(x.dtype).reshape(shape)  # bf16 activations stay bf16 (an fp32 bias would promote them)
    if activation == "lrelu":
        return F.leaky_relu(x, LRELU_SLOPE) * (LRELU_GAIN * gain)
    if activation != "linear":
        raise ValueError(f"unknown activation {activation!r}")
    return x * gain if gain != 1 else x


def act_gain(activation: str, gain: float = 1.0) -> float:
    """The gain that follows `activation` (sqrt 2 for lrelu) times `gain`. Both activations are positively
    homogeneous, act(g * y) = g * act(y) for g > 0, so a layer multiplies its weight and bias by this gain instead of
    its output: bias + activation + gain cost one pass over the activations instead of three."""
    if activation == "lrelu":
        return LRELU_GAIN * gain
    if activation != "linear":
        raise ValueError(f"unknown activation {activation!r}")
    return gain


def act_(x: Tensor, activation: str) -> Tensor:
    """The activation without its gain, in place (`x` is a fresh layer output that nothing else holds)."""
    return F.leaky_relu_(x, LRELU_SLOPE) if activation == "lrelu" else x


def _fir(x: Tensor, f: Tensor, up: int, down: int, pad: tuple[int, int, int, int], gain: float, flip: bool) -> Tensor:
    """Zero insertion by `up`, padding (negative crops), the filter (flipped first unless `flip`: a true
    convolution), subsampling by `down`, as depthwise convolutions that keep the input's memory layout."""
    C = x.shape[1]
    x0, x1, y0, y1 = pad
    kh, kw = f.shape
    kernel = (f * gain).to(x.dtype)
    # output_padding of a transposed convolution that ends where the padded, zero-inserted grid ends
    extra_y, extra_x = y1 - y0 + up - 1, x1 - x0 + up - 1
    if up > 1 and down == 1 and 0 <= x0 < kw and 0 <= y0 < kh and 0 <= extra_y < up and 0 <= extra_x < up:
        # zero insertion + padding + filter in one transposed convolution: no zeros in memory
        kernel = (kernel.flip([0, 1]) if flip else kernel)[None, None].repeat(C, 1, 1, 1)
        return F.conv_transpose2d(x, kernel, stride=up, padding=(kh - 1 - y0, kw - 1 - x0),
                                  output_padding=(extra_y, extra_x), groups=C)  # fmt: skip
    if up > 1:
        B, _, H, W = x.shape
        x = x.reshape(B, C, H, 1, W, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(B, C, H * up, W * up)
    if min(pad) < 0:
        x = x[:, :, max(-y0, 0) : x.shape[2] - max(-y1, 0), max(-x0, 0) : x.shape[3] - max(-x1, 0)]
    x0, x1, y0, y1 = max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)
    kernel = (kernel if flip else kernel.flip([0, 1]))[None, None].repeat(C, 1, 1, 1)  # conv2d correlates
    if x0 == x1 and y0 == y1:  # the convolution pads by itself, no padded copy
        return F.conv2d(x, kernel, stride=down, padding=(y0, x0), groups=C)
    return F.conv2d(F.pad(x, [x0, x1, y0, y1]), kernel, stride=down, groups=C)


class FIRFilter(torch.autograd.Function):
    """`_fir` with its adjoint as the backward: the adjoint of (up, pad, filter, down) is (up by `down`, the adjoint
    padding, the flipped filter, down by `up`), itself a `FIRFilter`, so the backward is differentiable again (the
    R1 penalty's double backward). Autograd's own double backward of a depthwise convolution loops over the channels
    one convolution at a time; this is the structure of the official CUDA `upfirdn2d` op, in plain torch ops."""

    @staticmethod
    def forward(ctx, x: Tensor, f: Tensor, up: int, down: int, pad: tuple, gain: float, flip: bool) -> Tensor:
        ctx.save_for_backward(f)
        ctx.setup = (x.shape[2], x.shape[3], up, down, pad, gain, flip)
        return _fir(x, f, up, down, pad, gain, flip)

    @staticmethod
    def backward(ctx, dy: Tensor):
        (f,) = ctx.saved_tensors
        ih, iw, up, down, (x0, _, y0, _), gain, flip = ctx.setup
        oh, ow = dy.shape[2], dy.shape[3]
        fh, fw = f.shape
        pad = (fw - x0 - 1, iw * up - ow * down + x0 - up + 1, fh - y0 - 1, ih * up - oh * down + y0 - up + 1)
        dx = FIRFilter.apply(dy, f, down, up, pad, gain, not flip) if ctx.needs_input_grad[0] else None
        return dx, None, None, None, None, None, None


def fir_filter(
    x: Tensor, f: Tensor, *, up: int = 1, down: int = 1, pad: tuple[int, int, int, int] = (0, 0, 0, 0), gain: float = 1
) -> Tensor:
    """Upsample by zero insertion, pad (negative = crop), convolve with `f` (a true convolution), subsample.

    `pad` = (left, right, top, bottom) in the upsampled grid. (B, C, H, W) -> (B, C, H', W'). The subsampling is
    the convolution's stride: only the kept outputs are computed.
    """
    return FIRFilter.apply(x, f, up, down, tuple(pad), gain, False)


def upsample2d(x: Tensor, f: Tensor, up: int = 2) -> Tensor:
    """FIR upsampling of an image (the skip path of ToRGB): H, W -> up*H, up*W."""
    fw = f.shape[-1]
    pad = ((fw + up - 1) // 2, (fw - up) // 2)
    return fir_filter(x, f, up=up, pad=(pad[0], pad[1], pad[0], pad[1]), gain=up * up)


def resample_conv(
    x: Tensor,
    w: Tensor,
    f: Tensor,
    *,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    groups: int = 1,
    bias: Tensor | None = None,
) -> Tensor:
    """Convolution with FIR up/down-sampling, padded once with respect to the upsampled grid, + `bias`.

    w: (out, in / groups, k, k). Up: transposed stride-2 convolution then FIR (gain up^2); down: FIR then stride-2
    convolution (a 1x1 kernel is applied after the FIR subsampling); otherwise a plain padded convolution. The bias
    is added by the convolution itself unless an up-sampling FIR comes after it.
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
        return F.conv2d(x, w, bias, groups=groups)
    if down > 1 and up == 1:
        x = fir_filter(x, f, pad=(p0, p1, p0, p1))
        return F.conv2d(x, w, bias, stride=down, groups=groups)
    if up > 1:
        # transposed conv: swap in/out per group, flip spatially (conv_transpose correlates the other way)
        wt = w.reshape(groups, out_ch // groups, in_per_group, kh, kw).transpose(1, 2)
        wt = wt.reshape(groups * in_per_group, out_ch // groups, kh, kw).flip([2, 3])
        p0 -= kw - 1
        p1 -= kw - up
        pt = max(min(-p0, -p1), 0)
        x = F.conv_transpose2d(x, wt, stride=up, padding=pt, groups=groups)
        x = fir_filter(x, f, pad=(p0 + pt, p1 + pt, p0 + pt, p1 + pt), gain=up * up)
        return x if bias is None else x + bias.to(x.dtype).view(1, -1, 1, 1)
    return F.conv2d(x, w, bias, padding=padding, groups=groups)


def scaled_add(y: Tensor, gain: float, bias: Tensor | None, dim: int = -1) -> Tensor:
    """gain * y + bias (broadcast along `dim`), in place: `y` is a fresh layer output that nothing else holds.

    Not `torch.add(bias, y, alpha=gain)`: torch.compile (inductor, torch 2.14 on CPU) fuses that add into the
    preceding matrix product as an `addmm` and drops `alpha`, so a compiled MAT computed bias + y (a test guards it).
    """
    if gain != 1:
        y = y.mul_(gain)
    if bias is None:
        return y
    shape = [-1 if i == dim % y.ndim else 1 for i in range(y.ndim)]
    return y.add_(bias.to(y.dtype).view(shape))


def preferred_format(x: Tensor) -> torch.memory_format:
    """The activation layout of MAT's convolutions: channels-last on GPUs (cuDNN's tensor-core convolutions work in
    NHWC), the standard layout on CPUs, where oneDNN's strided and transposed convolutions lose more in the backward
    pass channels-last than the others gain (measured: BENCHMARKS.md, MAT against the official code)."""
    return torch.channels_last if x.is_cuda else torch.contiguous_format


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
        gain = act_gain(self.activation)
        b = self.bias * (self.bias_gain * gain) if (self.bias is not None and self.bias_gain * gain != 1) else self.bias
        # F.linear rather than x @ w.t(): the weight gradient keeps the weight's own layout (DDP buckets warn about,
        # and copy, gradients with transposed strides); with the bias it is one fused matrix product (addmm)
        if x.numel() // x.shape[-1] * self.weight.shape[0] < self.weight.numel():
            # fewer outputs than weights (styles, the mapping network at small batches): scale the output
            return act_(scaled_add(F.linear(x, self.weight), self.weight_gain * gain, b), self.activation)
        return act_(F.linear(x, self.weight * (self.weight_gain * gain), b), self.activation)


class Conv2dLayer(nn.Module):
    """Equalised-lr convolution with optional FIR up/down-sampling, bias and activation (gain sqrt 2 for lrelu).

    The gains (equalised lr, activation, `gain`) scale the weight and the bias, the bias is added by the
    convolution, and the activation runs in place: one pass over the output instead of the reference's three.
    """

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
        gain = act_gain(self.activation, gain)
        b = None if self.bias is None else (self.bias * gain if gain != 1 else self.bias).to(x.dtype)
        conv = functools.partial(resample_conv, f=self.resample_filter, up=self.up, down=self.down,
                                 padding=self.padding)  # fmt: skip
        H, W = x.shape[2] * self.up // self.down, x.shape[3] * self.up // self.down
        if x.shape[0] * self.weight.shape[0] * H * W < self.weight.numel():
            # fewer outputs than weights (the low-resolution layers): scale the output, not the weight
            y = scaled_add(conv(x, self.weight.to(x.dtype)), self.weight_gain * gain, b, dim=1)
        else:
            y = conv(x, (self.weight * (self.weight_gain * gain)).to(x.dtype), bias=b)
        return act_(y, self.activation)


class ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated convolution: per-sample weights scaled by an affine style, optionally demodulated.

    `weight` keeps the checkpoints' leading singleton dimension: (1, out, in, k, k). One sample: the per-sample
    weight (scaled, demodulated) convolves the input, as in MAT. Several: StyleGAN2's non-fused form, the same sums
    in another order: the input scaled by the style, one convolution with the shared weight for the whole batch,
    the output scaled by the demodulation coefficients (a grouped convolution per sample is slower on GPUs and
    breaks the channels-last layout). `gain` scales the output, `bias` is added (both folded where possible).
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

    def forward(self, x: Tensor, style: Tensor, gain: float = 1.0, bias: Tensor | None = None) -> Tensor:
        B, C, H, W = x.shape
        with torch.autocast(x.device.type, enabled=False):  # styles and demodulation in fp32 under mixed precision
            s = self.affine(style.to(self.affine.weight.dtype))  # (B, in), fp32 also under autocast
            if B == 1:
                weight = self.weight[0] * self.weight_gain * s.view(1, C, 1, 1)  # (out, in, k, k)
                if self.demodulate:
                    weight = weight * ((weight.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).rsqrt() * gain)
                elif gain != 1:
                    weight = weight * gain
            else:
                weight = self.weight[0] * (self.weight_gain * gain)
                if self.demodulate:  # sum over in, k, k of (weight_gain * w * s)^2, without the per-sample weights
                    w2 = (self.weight[0] * self.weight_gain).square().sum(dim=[2, 3])  # (out, in)
                    demod = (s.square() @ w2.t() + 1e-8).rsqrt()  # (B, out)
        if B == 1:
            return self._conv(x, weight.to(x.dtype), None if bias is None else bias.to(x.dtype))
        x = self._conv(x * s.to(x.dtype).view(B, C, 1, 1), weight.to(x.dtype), None)
        bias = None if bias is None else bias.to(x.dtype).view(1, -1, 1, 1)
        if self.demodulate:
            demod = demod.to(x.dtype).view(B, self.out_channels, 1, 1)
            return x * demod if bias is None else torch.addcmul(bias, x, demod)
        return x if bias is None else x + bias

    def _conv(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        f = self.resample_filter
        return resample_conv(x, weight, f, up=self.up, down=self.down, padding=self.padding, bias=bias)


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

    def forward(self, x: Tensor, style: Tensor, noise_mode: str = "random", generator: Generators = None) -> Tensor:
        if noise_mode not in ("random", "const", "none"):
            raise ValueError(f"noise_mode must be 'random', 'const' or 'none', got {noise_mode!r}")
        # lrelu(conv + noise + bias) * sqrt 2 = lrelu(sqrt 2 conv + sqrt 2 bias + sqrt 2 noise): gains folded
        x = self.conv(x, style, gain=LRELU_GAIN, bias=self.bias * LRELU_GAIN)
        if self.use_noise and noise_mode == "random":
            noise = draw(
                lambda shape, g: torch.randn(shape, device=x.device, generator=g, dtype=x.dtype),
                (x.shape[0], 1, *x.shape[2:]),
                generator,
            )
            x = x + noise * (self.noise_strength * LRELU_GAIN)
        elif self.use_noise and noise_mode == "const":
            x = x + (self.noise_const * (self.noise_strength * LRELU_GAIN)).to(x.dtype)
        return act_(x, "lrelu")


class ToRGB(nn.Module):
    """1x1 modulated conv without demodulation + bias; adds the FIR-upsampled previous image when given."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("resample_filter", make_fir())

    def forward(self, x: Tensor, style: Tensor, skip: Tensor | None = None) -> Tensor:
        out = self.conv(x, style, bias=self.bias)
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
            x = normalize_2nd_moment(z.to(self.w_avg.dtype))  # the weights' dtype: fp32 (or fp64 in tests)
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
