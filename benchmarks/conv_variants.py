"""Other ways to compute MAT's convolutions, timed against the plain oneDNN call on this CPU (issue #15).

    python -m benchmarks.conv_variants --threads 2 --repeats 3

Convolutions are ~78 % of our MAT generator's training step and ~89 % of the discriminator's on CPU, and they are
the same oneDNN kernels the official code calls, so a MAT faster than the official code by more than ~1.3x needs
convolutions that do less work or run closer to the machine's peak. Each variant below computes exactly the same
sum of products (only the rounding differs) and is checked against the direct call:
- 3x3, stride 1: Winograd F(2x2, 3x3) (Lavin & Gray 2016), 2.25x fewer multiplies, as tensor ops (unfold, small
  transform matrices, 16 batched matrix products);
- 3x3, stride 2 (the discriminator's and encoder's down-sampling): polyphase, four stride-1 convolutions on the
  even/odd sub-grids with the 2x2, 2x1, 1x2 and 1x1 sub-kernels (the same multiplies, no strided kernel); and
  space-to-depth, one 2x2 convolution on `pixel_unshuffle`d input (16/9 of the multiplies, one dense call);
- the 4x4 FIR (depthwise): two 1-D passes, and the depthwise call in channels-last.
A variant is worth adopting only if its forward+backward beats the direct call at MAT's shapes. The figures are in
BENCHMARKS.md; on the development VM none does.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

# Winograd F(2x2, 3x3): y = A^T [(G g G^T) * (B^T d B)] A on 4x4 input tiles with stride 2
WINO_BT = torch.tensor([[1.0, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]])
WINO_G = torch.tensor([[1.0, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
WINO_AT = torch.tensor([[1.0, 1, 1, 0], [0, 1, -1, -1]])
FIR = torch.tensor([1.0, 3.0, 3.0, 1.0])

SHAPES = {  # (in channels, out channels, size): MAT's discriminator and encoder at 256 px, batch 1
    "s1": [(64, 64, 256), (128, 128, 256), (256, 256, 128), (512, 512, 64)],
    "s2": [(64, 128, 257), (128, 256, 257), (256, 512, 129), (512, 512, 65)],
    "fir": [(64, 0, 259), (128, 0, 259), (256, 0, 131)],
}
TINY = {"s1": [(8, 8, 16)], "s2": [(8, 16, 17)], "fir": [(8, 0, 19)]}


def conv_s1(x: Tensor, w: Tensor) -> Tensor:
    return F.conv2d(x, w, padding=1)


def winograd_s1(x: Tensor, w: Tensor) -> Tensor:
    """3x3, stride 1, padding 1, even H and W."""
    n, _, h, wd = x.shape
    bt, g, at = (m.to(x.dtype) for m in (WINO_BT, WINO_G, WINO_AT))
    tiles = F.pad(x, [1, 1, 1, 1]).unfold(2, 4, 2).unfold(3, 4, 2)  # n c th tw 4 4
    v = torch.einsum("ik,jl,nctwkl->ijntwc", bt, bt, tiles)
    u = torch.einsum("ik,jl,ockl->ijco", g, g, w)
    m = torch.bmm(rearrange(v, "i j n t w c -> (i j) (n t w) c"), rearrange(u, "i j c o -> (i j) c o"))
    m = rearrange(m, "(i j) (n t w) o -> i j n t w o", i=4, n=n, t=h // 2)
    y = torch.einsum("ai,bj,ijntwo->notawb", at, at, m)
    return rearrange(y, "n o t a w b -> n o (t a) (w b)")


def conv_s2(x: Tensor, w: Tensor) -> Tensor:
    return F.conv2d(x, w, stride=2)


def polyphase_s2(x: Tensor, w: Tensor) -> Tensor:
    """3x3, stride 2, no padding, as four stride-1 convolutions on the sub-grids x[p::2, q::2]."""
    h, wd = (x.shape[-2] - 3) // 2 + 1, (x.shape[-1] - 3) // 2 + 1
    y = None
    for p in (0, 1):
        for q in (0, 1):
            k = w[:, :, p::2, q::2]
            part = F.conv2d(x[:, :, p::2, q::2][:, :, : h + k.shape[-2] - 1, : wd + k.shape[-1] - 1], k)
            y = part if y is None else y.add_(part)
    return y


def space_to_depth_s2(x: Tensor, w: Tensor) -> Tensor:
    """3x3, stride 2, no padding, as one 2x2 convolution on pixel_unshuffle(x) (the kernel zero-padded to 4x4)."""
    h, wd = (x.shape[-2] - 3) // 2 + 1, (x.shape[-1] - 3) // 2 + 1
    xu = F.pixel_unshuffle(F.pad(x, [0, 2 * wd + 2 - x.shape[-1], 0, 2 * h + 2 - x.shape[-2]]), 2)
    w4 = rearrange(F.pad(w, [0, 1, 0, 1]), "o c (a p) (b q) -> o (c p q) a b", p=2, q=2)
    return F.conv2d(xu, w4)


def fir_kernel(channels: int, dtype: torch.dtype) -> Tensor:
    k = torch.outer(FIR, FIR).to(dtype)
    return (k / k.sum())[None, None].expand(channels, 1, 4, 4).contiguous()


def fir_depthwise(x: Tensor, _: Tensor) -> Tensor:
    return F.conv2d(x, fir_kernel(x.shape[1], x.dtype), groups=x.shape[1])


def fir_separable(x: Tensor, _: Tensor) -> Tensor:
    c = x.shape[1]
    f = (FIR / FIR.sum()).to(x.dtype)
    x = F.conv2d(x, f.view(1, 1, 1, 4).expand(c, 1, 1, 4).contiguous(), groups=c)
    return F.conv2d(x, f.view(1, 1, 4, 1).expand(c, 1, 4, 1).contiguous(), groups=c)


def fir_channels_last(x: Tensor, _: Tensor) -> Tensor:
    y = F.conv2d(x.contiguous(memory_format=torch.channels_last), fir_kernel(x.shape[1], x.dtype), groups=x.shape[1])
    return y.contiguous()


VARIANTS: dict[str, tuple[Callable, list[Callable]]] = {
    "s1": (conv_s1, [winograd_s1]),
    "s2": (conv_s2, [polyphase_s2, space_to_depth_s2]),
    "fir": (fir_depthwise, [fir_separable, fir_channels_last]),
}


def fwd_bwd_s(fn: Callable, x: Tensor, w: Tensor, repeats: int) -> float:
    """Fastest of `repeats` forward + backward (input and weight gradients) calls, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        x.grad = w.grad = None
        start = time.perf_counter()
        y = fn(x, w)
        y.backward(torch.ones_like(y))
        best = min(best, time.perf_counter() - start)
    return best


def measure(shapes: dict[str, list[tuple[int, int, int]]], repeats: int) -> list[dict]:
    """One row per (kind, shape, variant): max relative difference to the direct call and the speed-up over it;
    the direct call and the variants alternate, each timed twice over, so a machine's slow spell hits all."""
    rows = []
    for kind, shape_list in shapes.items():
        direct, variants = VARIANTS[kind]
        for cin, cout, size in shape_list:
            gen = torch.Generator().manual_seed(0)
            x = torch.randn(1, cin, size, size, generator=gen).requires_grad_(True)
            w = torch.randn(max(cout, 1), cin, 3, 3, generator=gen).requires_grad_(kind != "fir")
            with torch.no_grad():
                ref = direct(x, w)
            times: dict[Callable, float] = {}
            for _ in range(2):
                for fn in (direct, *variants):
                    times[fn] = min(times.get(fn, float("inf")), fwd_bwd_s(fn, x, w, repeats))
            for fn in variants:
                with torch.no_grad():
                    err = ((fn(x, w) - ref).abs().max() / ref.abs().max()).item()
                rows.append({
                    "kind": kind, "shape": [cin, cout, size], "variant": fn.__name__, "max_rel_diff": err,
                    "direct_s": times[direct], "variant_s": times[fn], "speed_up": times[direct] / times[fn],
                })  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="small shapes, seconds (the CI test)")
    parser.add_argument("--json", default=None, help="also write the rows here")
    ns = parser.parse_args(argv)
    torch.set_num_threads(ns.threads)
    rows = measure(TINY if ns.tiny else SHAPES, ns.repeats)
    print(f"torch {torch.__version__}, {ns.threads} threads, fp32, batch 1, forward + backward, best of {ns.repeats}")
    print(f"{'kind':<5} {'in, out, size':<16} {'variant':<20} {'direct ms':>10} {'variant ms':>11} {'speed-up':>9}"
          f" {'max rel diff':>13}")  # fmt: skip
    for r in rows:
        shape = ", ".join(str(s) for s in r["shape"])
        print(f"{r['kind']:<5} {shape:<16} {r['variant']:<20} {r['direct_s'] * 1e3:>10.1f} "
              f"{r['variant_s'] * 1e3:>11.1f} {r['speed_up']:>8.2f}x {r['max_rel_diff']:>13.1e}")  # fmt: skip
    if ns.json:
        with open(ns.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return rows


if __name__ == "__main__":
    main()
