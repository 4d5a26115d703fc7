"""MAT speed and memory: forward+backward time and peak memory per image, fused (SDPA) vs explicit attention.

    python -m benchmarks.mat_speed --res 256 --batch 1 --repeats 2

Each configuration runs in a fresh subprocess so its peak resident memory (CPU) or peak CUDA memory is its own.
Also times the attention part alone (all WindowAttention calls of one forward+backward, the two paths).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch


def one(res: int, batch: int, repeats: int, fused: bool, device: str, bf16: bool) -> dict:
    from restoration.models.attention import WindowAttention
    from restoration.models.mat_checkpoint import build_official_generator

    torch.manual_seed(0)
    G = build_official_generator(img_resolution=res).to(device)
    G.set_fused_attention(fused)
    img = torch.rand(batch, 3, res, res, device=device) * 2 - 1
    known = torch.ones(batch, 1, res, res, device=device)
    known[:, :, res // 4 : 3 * res // 4, res // 4 : 3 * res // 4] = 0
    z, c = torch.randn(batch, 512, device=device), torch.zeros(batch, 0, device=device)
    attn_time = [0.0]

    def timed(module, args, kwargs=None):
        module._t0 = time.perf_counter()

    def done(module, args, out):
        if device == "cuda":
            torch.cuda.synchronize()
        attn_time[0] += time.perf_counter() - module._t0

    for m in G.modules():
        if isinstance(m, WindowAttention):
            m.register_forward_pre_hook(timed)
            m.register_forward_hook(done)
    ctx = torch.autocast(device, dtype=torch.bfloat16) if bf16 else torch.autocast(device, enabled=False)
    times = []
    for i in range(repeats + 1):
        attn_time[0] = 0.0
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with ctx:
            out = G(img, known, z, c, noise_mode="const")
        out.float().square().mean().backward()
        if device == "cuda":
            torch.cuda.synchronize()
        if i > 0:  # the first run warms up
            times.append((time.perf_counter() - t0, attn_time[0]))
        G.zero_grad(set_to_none=True)
    total = sum(t for t, _ in times) / len(times)
    attn = sum(a for _, a in times) / len(times)
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"res": res, "batch": batch, "fused": fused, "bf16": bf16, "device": device,
            "fwd_bwd_s_per_img": total / batch, "attn_fwd_s_per_img": attn / batch, "peak_mb": peak}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--res", type=int, nargs="+", default=[256])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ns = ap.parse_args()
    if ns.child:
        print(json.dumps(one(**json.loads(ns.child))))
        return
    print(f"device: {torch.cuda.get_device_name() if ns.device == 'cuda' else 'cpu'}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}")  # fmt: skip
    print(f"{'res':>5} {'attention':>9} {'fwd+bwd s/img':>14} {'attn fwd s/img':>15} {'peak MB':>9}")
    for res in ns.res:
        for fused in (True, False):
            spec = {"res": res, "batch": ns.batch, "repeats": ns.repeats, "fused": fused, "device": ns.device,
                    "bf16": ns.bf16}  # fmt: skip
            out = subprocess.run([sys.executable, "-m", "benchmarks.mat_speed", "--child", json.dumps(spec)],
                                 capture_output=True, text=True, check=True)  # fmt: skip
            r = json.loads(out.stdout.strip().splitlines()[-1])
            name = "fused" if fused else "explicit"
            print(f"{res:>5} {name:>9} {r['fwd_bwd_s_per_img']:>14.3f} {r['attn_fwd_s_per_img']:>15.4f} "
                  f"{r['peak_mb']:>9.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
