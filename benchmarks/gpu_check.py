"""Every GPU figure of the project in one prepared run, and the same code on CPU in seconds so that it never rots.

    bash benchmarks/gpu_check.sh --out $OUT                  # on the GPU machine (see gpu_check.sh for the call)
    python -m benchmarks.gpu_check --cpu --tiny --out DIR     # here and in CI (tests/test_gpu_check.py), seconds

Sections, run in this order against one deadline (`--budget-s`, 480 s by default: what is not reached is reported
as skipped, never silently dropped):

1. `env`: device, versions, the measured bf16 and fp32 (TF32 off) matrix-product rates.
2. `gpu_tests`: `pytest -m gpu` (bf16 autocast of every stage, the SDPA path, R1 in fp32, checkpointing equality).
3. `mat_ours`: MAT's G+D training step at 512 (`InpaintStage.train_step`: D step with R1 every 16, G step, EMA)
   in img/s for batch 1/4/8/16, bf16 and fp32 (TF32 off), peak memory, FLOPs per image (torch's counter) and MFU
   against the datasheet peaks (H200 SXM: 989 TFLOP/s dense bf16, 67 TFLOP/s fp32).
4. `mat_official`: the official code's step (`benchmarks/mat_steps.py: OfficialStep`, their networks) at fp32,
   TF32 off, as the official training runs; the ratio ours/official is the headline (target >= 3x).
5. `attention`: fused (SDPA) vs explicit attention, on the attention calls of one MAT forward, forward + backward.
6. `joint_train`: `joint_512` training img/s through `accelerate launch --config_file launch/single_gpu.yaml`,
   31 steps: the trainer's own steady-state figure (`throughput.json`: the 30 steps after the first, timed around
   the steps alone, so start-up, the first step's autotuning, evaluation and export are left out).
7. `predict`: `restoration-predict`'s work (read, find the hole, MAT, colorize, write) in img/s at 512, batch 1 and
   16, fp32 and bf16.

Heavy sections run in child processes (this one never initialises CUDA), so each has the whole GPU and its own
peak-memory figure; with `--tiny` they run in this process (only `env` starts a child), to keep the check quick.
Output: `OUT/gpu_check.json` and `OUT/gpu_check.md` (also printed).
With `--cpu --tiny` every section runs on CPU on the tiny preset at 64 px; without `--official-dir` the official
section runs the official *recipe* on our tiny networks (a stand-in, labelled so), so its code is exercised too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEAK_TFLOPS = {"bf16": 989.4, "fp32": 66.9}  # H200 SXM datasheet, dense; MFU is only computed on CUDA
GPU_TEST_FILES = ("tests/test_gpu.py", "tests/test_mixed_precision.py")


# -- settings of the two modes -------------------------------------------------------------------------------------


def settings(ns: argparse.Namespace) -> dict:
    if ns.tiny:
        return {"preset": "tiny", "res": 64, "batches": [2], "official_batches": [2], "timed_steps": 1,
                "joint_config": "configs/tiny.yaml", "joint_steps": 3, "joint_overrides": ["stage=joint"],
                "predict_batches": [1, 2], "predict_images": 2, "attention_batch": 2, "attention_reps": 1,
                "shard_images": 16}  # fmt: skip
    return {"preset": "official512", "res": 512, "batches": [1, 4, 8, 16], "official_batches": [1, 4, 8, 16],
            "timed_steps": 4, "joint_config": "configs/joint_512.yaml", "joint_steps": 31,
            "joint_overrides": [], "predict_batches": [1, 16], "predict_images": 32, "attention_batch": 8,
            "attention_reps": 3, "shard_images": 64}  # fmt: skip


# -- the children: each prints one JSON object per line ------------------------------------------------------------


_SINK: list[dict] | None = None  # rows of a child run in this process (--tiny), else printed for the parent


def emit(**row) -> None:
    if _SINK is not None:
        _SINK.append(row)
    else:
        print("ROW " + json.dumps(row), flush=True)


def child_env(spec: dict) -> None:
    import torch

    from benchmarks.mat_steps import timed

    device = torch.device(spec["device"])
    row = {"torch": torch.__version__, "python": platform.python_version(), "threads": torch.get_num_threads()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        row |= {"device": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                "sms": props.multi_processor_count, "cuda": torch.version.cuda}  # fmt: skip
    else:
        row |= {"device": f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"}
    n = 8192 if device.type == "cuda" else 512
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        torch.backends.cuda.matmul.allow_tf32 = False
        a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
        for _ in range(2):
            a @ b
        reps = 10 if device.type == "cuda" else 2
        seconds = timed(lambda: [a @ b for _ in range(reps)], device) / reps  # noqa: B023
        row[f"matmul_{name}_tflops"] = round(2 * n**3 / seconds / 1e12, 2)
    emit(**row)


def child_mat(spec: dict) -> None:
    """MAT steps for one implementation (`ours` or `official`), every (precision, batch), against a deadline."""
    import torch

    device = torch.device(spec["device"])
    torch.backends.cudnn.benchmark = True  # as the official training loop sets it; ours likewise here
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 (the official default, allow_tf32=False)
    torch.backends.cudnn.allow_tf32 = False
    for precision in spec["precisions"]:
        for batch in spec["batches"]:
            if time.time() > spec["deadline"]:
                emit(impl=spec["impl"], precision=precision, batch=batch, status="skipped (time budget)")
                continue
            try:
                emit(**measure_mat_step(spec, precision, batch, device))
            except torch.OutOfMemoryError:
                emit(impl=spec["impl"], precision=precision, batch=batch, status="out of memory")
            if device.type == "cuda":
                torch.cuda.empty_cache()


def measure_mat_step(spec: dict, precision: str, batch: int, device) -> dict:
    """One (implementation, precision, batch): warm-up, the median of a few normal steps, one R1 step."""
    import torch

    from benchmarks import mat_steps as ms

    torch.manual_seed(0)
    if spec["impl"] == "official":
        G, D = ms.build_official(Path(spec["official_dir"]), spec["res"])
    else:
        G, D = ms.build_ours(spec["preset"], spec["res"])
    if spec["impl"] == "ours":
        step = ms.OurStep(G, D, device, bf16=precision == "bf16", batch=batch)
    else:  # the official recipe, on their networks or (stand-in) on ours
        step = ms.OfficialStep(G, D, device, batch=batch)
    b = ms.make_batch(batch, spec["res"], G.z_dim, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    warm = ms.timed(lambda: step(b, False), device)
    ms.timed(lambda: step(b, True), device)  # warms the double-backward kernels too
    n = spec["timed_steps"] if device.type != "cuda" else max(2, min(8, int(3.0 / max(warm, 1e-3))))
    normal = ms.median([ms.timed(lambda: step(b, False), device) for _ in range(n)])
    r1 = ms.timed(lambda: step(b, True), device)
    seconds = ms.amortized_step_s(normal, r1)
    row = {"impl": spec["impl"], "precision": precision, "batch": batch, "status": "ok", "step_s": seconds,
           "normal_step_s": normal, "r1_step_s": r1, "img_s": batch / seconds, "timed_steps": n}  # fmt: skip
    if device.type == "cuda":
        row["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    if batch == spec["batches"][0] and spec.get("count_flops"):
        normal_flops = ms.count_flops(lambda: step(b, False))
        row["flops_per_img"] = ms.amortized_step_s(normal_flops, ms.count_flops(lambda: step(b, True))) / batch
    return row


def child_attention(spec: dict) -> None:
    """Fused vs explicit attention on the shapes of one MAT forward: the attention kernels alone (recorded calls,
    forward + backward) and the whole generator forward + backward."""
    import torch

    from benchmarks import mat_steps as ms
    from restoration.models import attention as attn

    device = torch.device(spec["device"])
    torch.backends.cudnn.benchmark = True
    G, _ = ms.build_ours(spec["preset"], spec["res"])
    G = G.to(device)
    b = ms.make_batch(spec["batch"], spec["res"], G.z_dim, device)
    calls: list[tuple] = []
    original = attn.fused_attention

    def record(q, k, v, bias, scale):
        calls.append((q.shape, bias.shape, scale))
        return original(q, k, v, bias, scale)

    attn.fused_attention = record
    with torch.no_grad():
        G(b.real * b.known, b.known, b.z, None, noise_mode="const")
    attn.fused_attention = original
    for precision in spec["precisions"]:
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        inputs = []
        for q_shape, bias_shape, scale in calls:
            q, k, v = (torch.randn(q_shape, device=device, dtype=dtype, requires_grad=True) for _ in range(3))
            bias = torch.where(torch.rand(bias_shape, device=device) < 0.3, -100.0, 0.0)
            inputs.append((q, k, v, bias, scale))

        def run(fn):
            for q, k, v, bias, scale in inputs:  # noqa: B023
                fn(q, k, v, bias, scale).float().sum().backward()

        times = {}
        for name, fn in (("fused", attn.fused_attention), ("explicit", attn.explicit_attention)):
            run(fn)
            times[name] = ms.median([ms.timed(lambda: run(fn), device) for _ in range(spec["reps"])])  # noqa: B023
        whole = {}
        for fused in (True, False):
            G.set_fused_attention(fused)
            ctx = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

            def g_step():
                with ctx:  # noqa: B023
                    ms.g_fwd_bwd(G, b)

            g_step()
            whole[fused] = ms.median([ms.timed(g_step, device) for _ in range(spec["reps"])])
        G.set_fused_attention(True)
        emit(precision=precision, calls=len(calls), fused_s=times["fused"], explicit_s=times["explicit"],
             kernel_ratio=times["explicit"] / times["fused"], g_fused_s=whole[True], g_explicit_s=whole[False],
             g_ratio=whole[False] / whole[True])  # fmt: skip


def child_predict(spec: dict) -> None:
    """`restoration.predict.predict` (what the CLI runs per input list) on contest-style inputs, random weights."""
    import torch
    from PIL import Image

    from restoration.image_io import list_inputs
    from restoration.pipeline import load_pipeline
    from restoration.predict import predict

    device = torch.device(spec["device"])
    torch.backends.cudnn.benchmark = True
    work = Path(spec["work"])
    inputs = work / "predict-inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    from benchmarks.predict_speed import inputs as contest_inputs

    for i, gray in enumerate(contest_inputs(spec["images"], spec["res"])):
        Image.fromarray(gray).save(inputs / f"TEST_{i:03d}.png")
    items = list_inputs([str(inputs)])
    export = Path(spec["export"])
    for precision in spec["precisions"]:
        pipeline = load_pipeline([export], device)
        settings = pipeline.defaults.but(precision=precision)
        predict(pipeline, items[:1], work / "warm", settings=settings, batch_size=1)
        for batch in spec["batches"]:
            predict(pipeline, items[:batch], work / "warm", settings=settings, batch_size=batch)  # warm-up
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats(device)
            start = time.perf_counter()
            report = predict(pipeline, items, work / f"out-{precision}-{batch}", settings=settings, batch_size=batch)
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            row = {"precision": precision, "batch": batch, "images": len(report["written"]),
                   "img_s": len(report["written"]) / seconds}  # fmt: skip
            if device.type == "cuda":
                row["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            emit(**row)


CHILDREN = {"env": child_env, "mat": child_mat, "attention": child_attention, "predict": child_predict}


def run_child(kind: str, spec: dict, timeout: float, inline: bool = False) -> tuple[list[dict], str]:
    """Run a child section; returns its rows (also those printed before a timeout or crash) and its output tail.
    `inline` runs it in this process instead (the quick CPU check: no start-up per section)."""
    global _SINK
    if inline:
        _SINK = []
        try:
            CHILDREN[kind](spec)
            return _SINK, "ok" if _SINK else "no result"
        finally:
            _SINK = None
    cmd = [sys.executable, "-m", "benchmarks.gpu_check", "--child", kind, json.dumps(spec)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=max(timeout, 1), env=env, cwd=ROOT)
        out, status = proc.stdout + proc.stderr, ("ok" if proc.returncode == 0 else f"exit {proc.returncode}")
    except subprocess.TimeoutExpired as err:
        out = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        out += (err.stderr or b"").decode() if isinstance(err.stderr, bytes) else (err.stderr or "")
        status = f"timeout after {timeout:.0f} s"
    rows = [json.loads(line[4:]) for line in out.splitlines() if line.startswith("ROW ")]
    tail = "\n".join(line for line in out.splitlines() if not line.startswith("ROW "))[-3000:]
    if status == "ok" and not rows:
        status = "no result"
    return rows, status if status == "ok" else f"{status}\n{tail}"


# -- sections run by the parent ------------------------------------------------------------------------------------


class Check:
    def __init__(self, ns: argparse.Namespace) -> None:
        self.ns, self.cfg = ns, settings(ns)
        self.device = "cpu" if ns.cpu else "cuda"
        self.start = time.time()
        self.deadline = self.start + ns.budget_s
        self.sections: dict[str, dict] = {}
        self.work = Path(tempfile.mkdtemp(prefix="gpu-check-"))

    def left(self) -> float:
        return self.deadline - time.time()

    def section(self, name: str, cap_s: float, body) -> None:
        """Run `body(timeout)` unless the budget is spent; record its rows, status and seconds."""
        started = time.time()
        if self.left() < 5:
            self.sections[name] = {"status": "skipped (time budget)", "rows": [], "seconds": 0.0}
            return
        try:
            rows, status = body(min(cap_s, self.left()))
        except Exception:  # noqa: BLE001 - one broken section must not lose the others' figures
            rows, status = [], "error\n" + traceback.format_exc()[-3000:]
        self.sections[name] = {"status": status, "rows": rows, "seconds": round(time.time() - started, 1)}
        print(f"[{time.time() - self.start:6.0f} s] {name}: {status.splitlines()[0]} ({len(rows)} rows)", flush=True)

    def spec(self, **extra) -> dict:
        return {"device": self.device, "preset": self.cfg["preset"], "res": self.cfg["res"], **extra}

    # each returns (rows, status)
    def env(self, timeout: float):
        return run_child("env", self.spec(), timeout)

    def gpu_tests(self, timeout: float):
        cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", *GPU_TEST_FILES]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
        except subprocess.TimeoutExpired:
            return [], f"timeout after {timeout:.0f} s"
        summary = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
        counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|deselected|error|errors)", summary)}
        ok = proc.returncode == 0 or (proc.returncode == 5 and not counts.get("failed"))  # 5: nothing selected
        status = "ok" if ok else f"exit {proc.returncode}\n" + (proc.stdout + proc.stderr)[-3000:]
        return [{"summary": summary, **counts}], status

    def mat(self, impl: str, timeout: float):
        cfg = self.cfg
        spec = self.spec(impl=impl, timed_steps=cfg["timed_steps"], deadline=time.time() + timeout - 10)
        if impl == "ours":
            spec |= {"precisions": ["bf16", "fp32"], "batches": cfg["batches"], "count_flops": True}
        else:
            spec |= {"precisions": ["fp32"], "batches": cfg["official_batches"]}
            if impl == "official":
                spec["official_dir"] = str(self.ns.official_dir)
        return run_child("mat", spec, timeout, inline=self.ns.tiny)

    def attention(self, timeout: float):
        cfg = self.cfg
        spec = self.spec(precisions=["bf16", "fp32"], batch=cfg["attention_batch"], reps=cfg["attention_reps"])
        return run_child("attention", spec, timeout, inline=self.ns.tiny)

    def shards(self) -> Path:
        """Synthetic photo shards at the run's size (built once, with the shard builder's worker pool)."""
        out = self.work / "shards"
        if (out / "manifest.json").is_file():
            return out
        import numpy as np
        from PIL import Image

        from restoration.data.shard_build import build_photo_shards

        photos = self.work / "photos"
        photos.mkdir(exist_ok=True)
        rng = np.random.default_rng(0)
        size = self.cfg["res"]
        yy, xx = np.mgrid[0:size, 0:size] / size
        for i in range(self.cfg["shard_images"]):
            f = rng.uniform(2, 9, size=(3, 2))
            rgb = np.stack([np.sin(f[c, 0] * xx + f[c, 1] * yy + rng.uniform(0, 6)) for c in range(3)], -1)
            Image.fromarray(((rgb * 0.5 + 0.5) * 255).astype(np.uint8)).save(photos / f"p{i:03d}.png")
        build_photo_shards(photos, out, size=size, val_fraction=0.1, samples_per_shard=16, seed=0,
                           workers=min(8, os.cpu_count() or 1))  # fmt: skip
        return out

    def joint_train(self, timeout: float):
        cfg = self.cfg
        shards = self.shards()
        steps = cfg["joint_steps"]
        run_dir = self.work / "runs" / f"joint-{steps}"
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "launch/single_gpu.yaml",
               "-m", "restoration.train", cfg["joint_config"], *cfg["joint_overrides"], f"data.root={shards}",
               f"run.output_dir={run_dir.parent}", f"run.name={run_dir.name}", f"run.max_steps={steps}",
               "run.tracking=false", "run.log_model=false", "run.eval_batches=1", "run.eval_every=0",
               "run.checkpoint_every=100000", "init.from_weights=[]", "init.carry_state=false",
               f"data.num_workers={2 if self.ns.tiny else 8}"]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        if self.device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=max(self.left(), 1), cwd=ROOT, env=env)
        launch_s = time.perf_counter() - start
        if proc.returncode != 0:
            return [], f"exit {proc.returncode}\n" + (proc.stdout + proc.stderr)[-3000:]
        speed = json.loads((run_dir / "throughput.json").read_text())
        return [{"steps": speed["steps"], "batch": speed["batch"], "launch_s": launch_s,
                 "first_step_s": speed["first_step_s"], "step_s": speed["step_s"],
                 "img_s": speed["img_per_s"]}], "ok"  # fmt: skip

    def predict(self, timeout: float):
        import torch

        from restoration.config import load_config
        from restoration.models.colorizer import ColorizerConfig, build_colorizer
        from restoration.models.mat import MATConfig, build_generator
        from restoration.recipe import TrainConfig, pipeline_meta
        from restoration.weights import export_weights

        export = self.work / "export"
        if self.ns.tiny:
            cfg = load_config(TrainConfig, ROOT / "configs/tiny.yaml")
            mat_cfg, color_cfg = cfg.mat, cfg.colorizer
            meta = pipeline_meta(cfg)
        else:
            mat_cfg, color_cfg = MATConfig(preset="official512"), ColorizerConfig(encoder="resnet34")
            meta = {"stage": "benchmark", "image_size": 512, "mat": {"preset": "official512"},
                    "colorizer": {"encoder": "resnet34"}}  # fmt: skip
        torch.manual_seed(0)
        export_weights({"mat_G": build_generator(mat_cfg), "color_G": build_colorizer(color_cfg)}, export, meta)
        spec = self.spec(precisions=["bf16", "fp32"], batches=self.cfg["predict_batches"],
                         images=self.cfg["predict_images"], export=str(export), work=str(self.work))  # fmt: skip
        return run_child("predict", spec, timeout, inline=self.ns.tiny)

    def run(self) -> dict:
        ns = self.ns
        self.section("env", 60, self.env)
        self.section("gpu_tests", 90, self.gpu_tests)
        self.section("mat_ours", 150, lambda t: self.mat("ours", t))
        # the official code has only the official resolutions: the quick check runs its recipe on our tiny nets
        official = "official-recipe-standin" if ns.tiny else ("official" if ns.official_dir else None)
        if official:
            self.section("mat_official", 120, lambda t: self.mat(official, t))
        else:
            self.sections["mat_official"] = {"status": "skipped (no --official-dir)", "rows": [], "seconds": 0}
        self.section("attention", 45, self.attention)
        self.section("joint_train", 150, self.joint_train)
        self.section("predict", 90, self.predict)
        return {"mode": "cpu-tiny" if ns.tiny else ("cpu" if ns.cpu else "gpu"), "device": self.device,
                "official_dir": str(ns.official_dir) if ns.official_dir else None,
                "total_s": round(time.time() - self.start, 1), "budget_s": ns.budget_s,
                "sections": self.sections}  # fmt: skip


# -- the report ----------------------------------------------------------------------------------------------------


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def markdown(report: dict) -> str:
    s = report["sections"]
    env = (s.get("env", {}).get("rows") or [{}])[0]
    lines = [f"# GPU check ({report['mode']}): {env.get('device', '?')}",
             f"torch {env.get('torch', '?')}, CUDA {env.get('cuda', '-')}, Python {env.get('python', '?')}; "
             f"measured matmul: bf16 {_fmt(env.get('matmul_bf16_tflops'))} TFLOP/s, fp32 (TF32 off) "
             f"{_fmt(env.get('matmul_fp32_tflops'))} TFLOP/s; total {report['total_s']} s of {report['budget_s']} s",
             "", "| section | status | seconds |", "|---|---|---|"]  # fmt: skip
    for name, sec in s.items():
        lines.append(f"| {name} | {sec['status'].splitlines()[0]} | {sec['seconds']} |")
    tests = (s.get("gpu_tests", {}).get("rows") or [{}])[0]
    lines += ["", f"`pytest -m gpu`: {tests.get('summary', '-')}"]

    ours = [r for r in s.get("mat_ours", {}).get("rows", []) if r.get("status") == "ok"]
    official = {r["batch"]: r for r in s.get("mat_official", {}).get("rows", []) if r.get("status") == "ok"}
    flops = next((r["flops_per_img"] for r in ours if "flops_per_img" in r), None)
    lines += ["", "## MAT G+D training step (D with R1 every 16, G, EMA)",
              f"FLOPs per image and step (matrix products and convolutions, forward + backward, R1 amortised): "
              f"{_fmt(flops / 1e12 if flops else None, 3)} TFLOP", "",
              "| impl | precision | batch | img/s | step s | peak GiB | MFU | vs official fp32 |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in s.get("mat_ours", {}).get("rows", []) + s.get("mat_official", {}).get("rows", []):
        if r.get("status") != "ok":
            lines.append(f"| {r['impl']} | {r['precision']} | {r['batch']} | {r['status']} | | | | |")
            continue
        mfu = None
        if flops and report["device"] == "cuda" and r["impl"] == "ours":
            mfu = flops * r["img_s"] / (PEAK_TFLOPS[r["precision"]] * 1e12)
        ratio = r["img_s"] / official[r["batch"]]["img_s"] if r["batch"] in official else None
        lines.append(f"| {r['impl']} | {r['precision']} | {r['batch']} | {_fmt(r['img_s'])} | {_fmt(r['step_s'], 3)} | "
                     f"{_fmt(r.get('peak_gib'), 1)} | {_fmt(mfu * 100 if mfu else None, 1)}{' %' if mfu else ''} | "
                     f"{_fmt(ratio)}{'x' if ratio else ''} |")  # fmt: skip
    best = max((r["img_s"] for r in ours), default=None)
    best_official = max((r["img_s"] for r in official.values()), default=None)
    if best and best_official:
        lines += ["", f"**Headline: best ours {best:.2f} img/s vs best official {best_official:.2f} img/s = "
                      f"{best / best_official:.2f}x** (target >= 3x)"]  # fmt: skip

    lines += ["", "## Attention: fused (SDPA) vs explicit softmax, forward + backward", "",
              "| precision | calls | fused s | explicit s | kernel ratio | whole G fwd+bwd ratio |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for r in s.get("attention", {}).get("rows", []):
        lines.append(f"| {r['precision']} | {r['calls']} | {_fmt(r['fused_s'], 4)} | {_fmt(r['explicit_s'], 4)} | "
                     f"{_fmt(r['kernel_ratio'])}x | {_fmt(r['g_ratio'])}x |")  # fmt: skip
    lines += ["", "## joint training through `accelerate launch --config_file launch/single_gpu.yaml`", ""]
    for r in s.get("joint_train", {}).get("rows", []):
        lines.append(f"{r['steps']} steps after the first at batch {r['batch']}: {_fmt(r['step_s'], 3)} s/step = "
                     f"{_fmt(r['img_s'])} img/s (first step {_fmt(r['first_step_s'], 1)} s, whole launch "
                     f"{_fmt(r['launch_s'], 1)} s)")  # fmt: skip
    lines += ["", "## Prediction (`restoration-predict`'s work: read, find the hole, MAT, colorize, write)", "",
              "| precision | batch | images | img/s | peak GiB |", "|---|---|---|---|---|"]  # fmt: skip
    for r in s.get("predict", {}).get("rows", []):
        lines.append(f"| {r['precision']} | {r['batch']} | {r['images']} | {_fmt(r['img_s'])} | "
                     f"{_fmt(r.get('peak_gib'), 1)} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("gpu-check"), help="folder for gpu_check.json and .md")
    ap.add_argument("--cpu", action="store_true", help="run on CPU (with --tiny: the CI check, seconds)")
    ap.add_argument("--tiny", action="store_true", help="tiny preset at 64 px, one timed step per figure")
    ap.add_argument("--official-dir", type=Path, default=None, help="the official MAT code (networks/, torch_utils/)")
    ap.add_argument("--budget-s", type=float, default=480.0, help="deadline for the whole check, seconds")
    ap.add_argument("--child", nargs=2, metavar=("KIND", "SPEC"), help=argparse.SUPPRESS)
    ns = ap.parse_args(argv)
    if ns.child:
        CHILDREN[ns.child[0]](json.loads(ns.child[1]))
        return 0
    if not ns.cpu:
        import torch

        if not torch.cuda.is_available():
            ap.error("no CUDA device: use --cpu (and --tiny for the quick check)")
    check = Check(ns)
    try:
        report = check.run()
    finally:  # its shards, runs and exports are ~0.5 GB even at the tiny preset: never leave them behind
        shutil.rmtree(check.work, ignore_errors=True)
    ns.out.mkdir(parents=True, exist_ok=True)
    (ns.out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str))
    text = markdown(report)
    (ns.out / "gpu_check.md").write_text(text)
    print(text)
    failed = [k for k, v in report["sections"].items() if not v["status"].startswith(("ok", "skipped"))]
    if failed:
        print(f"sections that failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
