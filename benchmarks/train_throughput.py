"""Joint-stage training throughput: samples/s with 1 rank vs 2 synchronised CPU ranks (or GPUs).

    python -m benchmarks.train_throughput --shards runs/demo-data/builtin-64/shards --steps 20

Runs the real trainer (tiny config, joint stage) once with `python -m restoration.train` and once with
`accelerate launch --config_file launch/cpu.yaml` (2 gloo ranks), and reads the step timings the trainer logs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list[str], out_dir: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shards", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=4)
    ns = ap.parse_args()
    common = [
        "configs/demo.yaml", f"data.root={ns.shards}", "run.eval_every=0", "run.tracking=false",
        f"run.checkpoint_every={10**6}", f"run.batch_size={ns.batch}", "data.num_workers=1",
    ]  # fmt: skip
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for ranks in (1, 2):
            timings = []
            for steps in (2, ns.steps + 2):  # the difference removes start-up, data warm-up and the final eval
                args = [
                    *common,
                    f"run.max_steps={steps}",
                    f"run.output_dir={tmp}/r{ranks}s{steps}",
                    "run.eval_batches=1",
                ]
                if ranks == 1:
                    cmd = [sys.executable, "-m", "restoration.train", *args]
                else:
                    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "launch/cpu.yaml",
                           "--main_process_port", "29611", "-m", "restoration.train", *args]  # fmt: skip
                timings.append(run(cmd, Path(tmp)))
            seconds = timings[1] - timings[0]
            results[ranks] = ns.steps * ns.batch * ranks / seconds
            detail = f"{ns.steps} steps x {ns.batch} per rank in {seconds:.1f} s"
            print(f"{ranks} rank(s): {results[ranks]:.2f} samples/s ({detail})")
    print(json.dumps({"speedup_2_vs_1": results[2] / results[1]}))


if __name__ == "__main__":
    main()
