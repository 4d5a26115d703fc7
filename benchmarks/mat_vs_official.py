"""Our MAT against the official code (fenglinglwb/MAT, `networks/mat.py`), side by side, on the same weights, inputs
and random draws, in fresh processes that alternate so that the load of a shared machine hits both alike.

    python -m benchmarks.mat_vs_official --official-dir ../official-mat --res 256 --rounds 6 --threads 2

Workloads (batch `--batch`, fp32, `--threads` intra-op threads):
- `G`: generator forward (both outputs) + backward, the generator's share of a training step;
- `D`: discriminator forward + backward on real images; `D+R1`: the same with the R1 penalty's double backward;
- `step`, `step+R1`: one whole training iteration of each recipe (`benchmarks/mat_steps.py`: ours is the trainer's
  `InpaintStage.train_step`, theirs the official loop's phases), without and with the lazy R1 penalty.
A round runs, for each workload, one fresh process per implementation back to back (which goes first alternates);
a process builds the networks, warms up, times the workload `--repeats` times and keeps the fastest (the run least
disturbed by other processes), in wall-clock and in CPU seconds of the process. The speed-up per workload is the
median over rounds of official / ours within the round, on wall-clock (the figure) and on CPU time (a check: less
sensitive to a shared machine's load, more to threads spinning while they wait).
The outputs of `G` and `D` are compared too: both sides compute the same numbers (to float rounding), so the
timing compares implementations, not different work.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks import mat_steps as ms

WORKLOADS = ("G", "D", "D+R1", "step", "step+R1")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def best_of(fn, repeats: int) -> tuple[float, float]:
    """(fastest wall-clock seconds, fewest CPU seconds) over `repeats` calls."""
    walls, cpus = [], []
    for _ in range(repeats):
        torch.manual_seed(0)
        cpu = cpu_seconds()
        walls.append(ms.timed(fn, torch.device("cpu")))
        cpus.append(cpu_seconds() - cpu)
    return min(walls), min(cpus)


def child(spec: dict) -> dict:
    """One workload of one implementation: build, warm up, time it `repeats` times."""
    torch.set_num_threads(spec["threads"])
    device = torch.device("cpu")
    weights = torch.load(spec["weights"], weights_only=True)
    if spec["impl"] == "official":
        G, D = ms.build_official(Path(spec["official_dir"]), spec["res"])
        G.load_state_dict(weights["G"])
        D.load_state_dict(weights["D"])
    else:
        G, D = ms.build_ours(f"official{spec['res']}")
        ms.copy_official_weights_from_state(weights["G"], G)
        ms.copy_official_weights_from_state(weights["D"], D)
        if spec.get("compile"):  # the warm-up below compiles (minutes); the timed repeats run the compiled code
            import torch._inductor.config as inductor_config

            inductor_config.fallback_random = True  # dropout draws as eager's: the outputs stay comparable
            G, D = torch.compile(G), torch.compile(D)
    b = ms.make_batch(spec["batch"], spec["res"], 512, device, seed=1)
    name = spec["workload"]
    out: dict = {"impl": spec["impl"], "workload": name}
    if name.startswith("step"):
        if spec["impl"] == "official":
            step = ms.OfficialStep(G, D, device, batch=spec["batch"])
        else:
            step = ms.OurStep(G, D, device, bf16=False, batch=spec["batch"])
        r1 = name == "step+R1"
        step(b, r1)  # warm-up
        out["seconds"], out["cpu_seconds"] = best_of(lambda: step(b, r1), spec["repeats"])
        return out
    run = {"G": lambda: ms.g_fwd_bwd(G, b), "D": lambda: ms.d_fwd_bwd(D, b),
           "D+R1": lambda: ms.d_fwd_bwd(D, b, r1=True)}[name]  # fmt: skip
    torch.manual_seed(0)  # the same dropout draws on both sides
    result = run()  # also the warm-up
    out["output"] = result.flatten()[:: max(1, result.numel() // 4096)].tolist()
    out["seconds"], out["cpu_seconds"] = best_of(run, spec["repeats"])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--official-dir", type=Path, help="the official MAT checkout (networks/, torch_utils/)")
    ap.add_argument("--res", type=int, default=256, choices=(256, 512))
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    ap.add_argument("--json", type=Path, default=None, help="also write every measurement here")
    ap.add_argument("--compile", action="store_true", help="our networks under torch.compile (inductor); G and D only")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ns = ap.parse_args(argv)
    if ns.child:
        print("RESULT " + json.dumps(child(json.loads(ns.child))), flush=True)
        return 0
    if ns.official_dir is None:
        ap.error("--official-dir is required")
    if ns.compile and set(ns.workloads) - {"G", "D"}:
        ap.error("--compile times G and D only (compiled graphs have no double backward for R1)")

    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "weights.pt"
        torch.manual_seed(0)
        G, D = ms.build_official(ns.official_dir, ns.res)  # the official initialisation, shared by both sides
        torch.save({"G": G.state_dict(), "D": D.state_dict()}, weights)
        del G, D
        spec = {"official_dir": str(ns.official_dir.resolve()), "res": ns.res, "batch": ns.batch, "threads": ns.threads,
                "repeats": ns.repeats, "workloads": ns.workloads, "weights": str(weights),
                "compile": ns.compile}  # fmt: skip
        results: dict[str, dict[str, list[dict]]] = {w: {"official": [], "ours": []} for w in ns.workloads}
        started = time.time()
        for r in range(ns.rounds):
            for i, workload in enumerate(ns.workloads):
                order = ("official", "ours") if (r + i) % 2 == 0 else ("ours", "official")
                for impl in order:
                    job = json.dumps({**spec, "impl": impl, "workload": workload})
                    cmd = [sys.executable, "-m", "benchmarks.mat_vs_official", "--child", job]
                    proc = subprocess.run(cmd, capture_output=True, text=True)
                    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
                    if proc.returncode != 0 or not lines:
                        print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
                        return 1
                    results[workload][impl].append(json.loads(lines[-1][7:]))
                off, our = results[workload]["official"][-1], results[workload]["ours"][-1]
                print(f"round {r + 1} {workload:8s} official {off['seconds']:6.2f}s  ours {our['seconds']:6.2f}s  "
                      f"{off['seconds'] / our['seconds']:5.2f}x", flush=True)  # fmt: skip
    print(f"\n{ns.rounds} rounds in {time.time() - started:.0f} s; torch {torch.__version__}, {ns.threads} threads, "
          f"batch {ns.batch}, {ns.res} px, fp32{', ours compiled' if ns.compile else ''}")  # fmt: skip
    print(f"{'workload':10s} {'official s':>11s} {'ours s':>8s} {'speed-up':>9s} {'CPU-time speed-up':>18s}   "
          "per round (wall)")  # fmt: skip
    summary = {}
    for name in ns.workloads:
        off, our = results[name]["official"], results[name]["ours"]
        per_round = [o["seconds"] / u["seconds"] for o, u in zip(off, our)]
        cpu = [o["cpu_seconds"] / u["cpu_seconds"] for o, u in zip(off, our)]
        off_s, our_s = ms.median([o["seconds"] for o in off]), ms.median([u["seconds"] for u in our])
        summary[name] = {"official_s": off_s, "ours_s": our_s, "speedup": ms.median(per_round),
                         "cpu_speedup": ms.median(cpu), "per_round": per_round, "cpu_per_round": cpu}  # fmt: skip
        print(f"{name:10s} {off_s:11.2f} {our_s:8.2f} {ms.median(per_round):8.2f}x {ms.median(cpu):17.2f}x   "
              + " ".join(f"{x:.2f}" for x in per_round))  # fmt: skip
        if "output" in off[0]:
            a, b = torch.tensor(off[0]["output"]), torch.tensor(our[0]["output"])
            summary[name]["output_rel_diff"] = float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))
    for name, row in summary.items():
        if "output_rel_diff" in row:
            print(f"{name} outputs, ours vs official: max relative difference {row['output_rel_diff']:.1e} (sampled)")
    if ns.json:
        ns.json.write_text(json.dumps({"settings": vars(ns) | {"official_dir": str(ns.official_dir)},
                                       "summary": summary, "results": results}, indent=2, default=str))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
