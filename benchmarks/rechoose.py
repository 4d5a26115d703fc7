"""Choose a finished run's inference settings again, with this code's rule, on the run's own val split, and record
the choice in its export. Why: a run trained before a new inference knob (the chroma floor) existed chose without it;
training it again would only repeat the same networks. The rule, the val loader and the scoring are the trainer's
(`validation.choose` on the export's `Pipeline`), so the result is what a fresh run of this code would have recorded.

    python -m benchmarks.rechoose runs/source-split/runs/base1k-seed0 [--dry-run]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from accelerate import Accelerator

from restoration.config import load_config
from restoration.data.shards import make_val_loader
from restoration.pipeline import load_pipeline
from restoration.recipe import TrainConfig
from restoration.validation import choice_lines, choose
from restoration.weights import record_inference


def rechoose(run_dir: Path, *, record: bool = True) -> dict:
    """Run the end-of-training choice on `run_dir/final` with the run's saved config; returns what it recorded."""
    cfg = load_config(TrainConfig, run_dir / "config.yaml")
    export = run_dir / "final"
    accelerator = Accelerator(cpu=True)
    pipeline = load_pipeline([export])
    loader = make_val_loader(cfg.data, batch_size=cfg.run.batch_size, rank=0, world_size=1)
    chosen, results, _ = choose(
        pipeline, loader, accelerator, cfg.data, max_batches=cfg.run.eval_batches, num_panels=0
    )  # fmt: skip
    print("\n".join(choice_lines(results, chosen, width=28)))
    return record_inference(export, **chosen.recorded()) if record else chosen.recorded()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="finished run directories (each with final/, config.yaml)")
    parser.add_argument("--dry-run", action="store_true", help="print the choice, record nothing")
    ns = parser.parse_args(argv)
    for run_dir in ns.runs:
        print(f"{run_dir}: {rechoose(run_dir, record=not ns.dry_run)}", flush=True)


if __name__ == "__main__":
    main()
