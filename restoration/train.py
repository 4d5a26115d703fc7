"""The training entry point: ``python -m restoration.train CONFIG.yaml [a.b.c=value ...]``.

Works the same under ``accelerate launch -m restoration.train`` and ``torchrun -m restoration.train``. The loop is
generic and reads top to bottom: config -> accelerator -> task (the stage's networks, losses and steps) -> one
`prepare` -> resume -> tracking -> data -> steps (with eval, checkpoints and the preemption check) -> export.
The GAN logic of each stage lives in `restoration/tasks/`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import set_seed
from tqdm.auto import tqdm

from restoration.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from restoration.config import ConfigError, dump_yaml, flatten, load_config, save_yaml
from restoration.data.shards import DataConfig, make_train_loader, make_val_loader, prepare_batch
from restoration.models.baseline import BaselineConfig
from restoration.models.colorizer import ColorizerConfig
from restoration.models.detector import DetectorConfig
from restoration.models.discriminators import PatchDiscriminatorConfig
from restoration.models.mat import MATConfig
from restoration.preemption import REQUEUE_EXIT_CODE, PreemptionFlag
from restoration.replicas import replica_report
from restoration.tasks import Stage, build_task
from restoration.tasks.loss_weights import LossConfig
from restoration.tasks.schedule import OptimConfig
from restoration.tasks.weights_io import InitConfig
from restoration.tracking import Tracker, default_tracking_uri, git_sha
from restoration.validation import evaluate

log = logging.getLogger("restoration.train")


@dataclass
class RunConfig:
    """Where a run writes, how long it trains, how often it evaluates/saves, and how it is tracked."""

    name: str = "demo"
    experiment: str = "restoration"
    output_dir: Path = Path("runs")
    seed: int = 0
    max_steps: int = 100
    batch_size: int = 4  # per rank and micro-batch
    grad_accum: int = 1
    log_every: int = 10
    eval_every: int = 50  # 0 = only at the end
    eval_batches: int = 0  # 0 = the whole val split
    eval_at_start: bool = False  # also score the untrained (or freshly loaded) networks at step 0
    num_panels: int = 4
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    resume: Literal["auto", "never"] = "auto"
    mixed_precision: Literal["auto", "no", "bf16"] = "auto"  # auto: bf16 on GPUs that support it, fp32 on CPU
    compile: bool = False
    find_unused_parameters: bool = False
    max_nonfinite_steps: int = 20
    tracking: bool = True
    log_model: bool = True  # log the pipeline as an MLflow pyfunc model at the end (joint and gan_baseline stages)
    register_model: str = ""  # also register that model under this name

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "grad_accum", "log_every", "keep_checkpoints", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"run.{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class TrainConfig:
    """Everything one training run needs; each section is owned by the code it configures."""

    stage: Stage = "joint"
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    init: InitConfig = field(default_factory=InitConfig)
    mat: MATConfig = field(default_factory=MATConfig)
    colorizer: ColorizerConfig = field(default_factory=ColorizerConfig)
    color_disc: PatchDiscriminatorConfig = field(default_factory=PatchDiscriminatorConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)


def parse_args(argv: list[str] | None = None) -> tuple[Path | None, list[str], argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="restoration-train",
        description="Train a stage of the restoration pipeline. Positional arguments: an optional CONFIG.yaml "
        "followed by dotted overrides such as optim.lr=1e-4 run.max_steps=500.",
    )
    parser.add_argument("args", nargs="*", metavar="CONFIG.yaml | key=value")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--print-run-dir", action="store_true", help="print the run directory and exit (SLURM)")
    ns = parser.parse_args(argv)
    configs = [a for a in ns.args if "=" not in a]
    overrides = [a for a in ns.args if "=" in a]
    if len(configs) > 1:
        parser.error(f"give at most one config file, got {configs}")
    return (Path(configs[0]) if configs else None), overrides, ns


def use_bf16(run: RunConfig) -> bool:
    if run.mixed_precision == "auto":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return run.mixed_precision == "bf16"


def make_accelerator(run: RunConfig) -> Accelerator:
    """The accelerator for any launch (python, torchrun, accelerate launch; CPU or GPU).

    Mixed precision is *not* delegated to accelerate: tasks open bf16 autocast themselves around forwards, so that
    the lazy R1 penalty can run in fp32 (accelerate's patched forwards would re-enter autocast). bf16 needs no loss
    scaler, so none is shared between G and D. DDP settings that survive GAN graphs: buffers are not broadcast
    (MAT updates `w_avg` in forward, a broadcast would overwrite it mid-step), and discriminators are called
    unwrapped during generator steps, so DDP never sees a forward whose parameters get no gradient; therefore
    `find_unused_parameters` can stay off (faster).
    """
    # torch deprecates broadcast_buffers in favour of forward_sync_buffers, which accelerate cannot pass yet;
    # buffers are identical at init anyway (same seed on every rank before building the networks)
    warnings.filterwarnings("ignore", message=".*broadcast_buffers.*is deprecated", category=FutureWarning)
    # a (1, n) weight's gradient may come back with different strides on its size-1 dimension: same memory, no copy
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides", category=UserWarning)
    return Accelerator(
        cpu=not torch.cuda.is_available(),
        mixed_precision="no",
        gradient_accumulation_steps=run.grad_accum,
        dynamo_backend="inductor" if run.compile else "no",
        step_scheduler_with_optimizer=False,
        kwargs_handlers=[
            DistributedDataParallelKwargs(broadcast_buffers=False, find_unused_parameters=run.find_unused_parameters)
        ],
    )


def forever(loader) -> Iterator[dict]:
    """Cycle a loader whose epochs have a fixed length (equal on every rank)."""
    while True:
        yield from loader


def log_model(final_dir: Path, tracking_uri: str, run_id: str, register_as: str) -> None:
    """The whole pipeline as a pyfunc model in the training run; like all tracking, a failure only warns."""
    from restoration.mlflow_model import log_pipeline_model

    try:
        uri = log_pipeline_model([final_dir], tracking_uri=tracking_uri, run_id=run_id, register_as=register_as or None)
    except Exception as err:  # noqa: BLE001 - the weights are safe in final/; `restoration-export` can retry
        log.warning("could not log the MLflow model (%s: %s); run restoration-export --model %s", type(err).__name__,
                    err, final_dir)  # fmt: skip
        return
    print(f"MLflow model: {uri} (runs:/{run_id}/model)" + (f", registered as {register_as}" if register_as else ""))


def main(argv: list[str] | None = None) -> int:
    # -- config ------------------------------------------------------------------------------------------------
    config_path, overrides, ns = parse_args(argv)
    try:
        cfg = load_config(TrainConfig, config_path, overrides)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
    if ns.print_config:
        print(dump_yaml(cfg), end="")
        return 0
    if ns.print_run_dir:
        print((cfg.run.output_dir / cfg.run.name).resolve())
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("accelerate", "mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    # -- accelerator, seeds, run directory ---------------------------------------------------------------------
    accelerator = make_accelerator(cfg.run)
    is_main = accelerator.is_main_process
    run_dir = (cfg.run.output_dir / cfg.run.name).resolve()
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "REQUEUE").unlink(missing_ok=True)
        save_yaml(cfg, run_dir / "config.yaml")

    # -- data.root=builtin: shards of the photos bundled with scikit-image, built once by the main process -----
    if cfg.data.root == Path("builtin"):
        from restoration.demo import prepare_data

        builtin_root = cfg.run.output_dir / "demo-data"
        if is_main:
            prepare_data(builtin_root, cfg.data.image_size)
        accelerator.wait_for_everyone()
        cfg = dataclasses.replace(
            cfg, data=dataclasses.replace(cfg.data, root=prepare_data(builtin_root, cfg.data.image_size))
        )

    # -- the stage's networks, optimizers and EMA; one prepare in a fixed order (= the checkpoint layout) ------
    bf16 = use_bf16(cfg.run)
    set_seed(cfg.run.seed)  # the same initial weights, buffers (MAT's noise_const) and EMA copies on every rank
    task = build_task(cfg, accelerator, images_per_step=cfg.run.batch_size * cfg.run.grad_accum, bf16=bf16)
    names, nets = list(task.networks), list(task.networks.values())
    opt_names, opts = list(task.optimizers), list(task.optimizers.values())
    prepared = accelerator.prepare(*nets, *opts)
    task.networks = dict(zip(names, prepared[: len(nets)]))
    task.optimizers = dict(zip(opt_names, prepared[len(nets) :]))
    for ema in task.ema.values():
        ema.to(accelerator.device)
    set_seed(cfg.run.seed, device_specific=True)  # from here on: a different random stream per rank

    # -- resume -------------------------------------------------------------------------------------------------
    state: dict = {"step": 0, "mlflow_run_id": None, "nonfinite_skips": 0}
    checkpoint = latest_checkpoint(run_dir) if cfg.run.resume == "auto" else None
    if checkpoint is not None:
        state.update(load_checkpoint(accelerator, checkpoint, ema=task.ema))
        accelerator.print(f"resuming from {checkpoint} at step {state['step']}")
    step = int(state["step"])

    # -- tracking (main process only) ---------------------------------------------------------------------------
    tracker = Tracker(enabled=is_main and cfg.run.tracking)
    tracker.start(
        tracking_uri=default_tracking_uri(cfg.run.output_dir),
        experiment=cfg.run.experiment,
        run_name=cfg.run.name,
        run_id=state.get("mlflow_run_id"),
        artifact_root=cfg.run.output_dir.resolve() / "mlruns",
    )
    state["mlflow_run_id"] = tracker.run_id
    effective_batch = cfg.run.batch_size * cfg.run.grad_accum * accelerator.num_processes
    tracker.log_params(
        {
            **flatten(cfg),
            "world_size": accelerator.num_processes,
            "effective_batch": effective_batch,
            "git_sha": git_sha(),
            "precision": "bf16" if bf16 else "fp32",
        }
    )
    tracker.log_artifact(run_dir / "config.yaml")

    # -- data ---------------------------------------------------------------------------------------------------
    train_loader = make_train_loader(
        cfg.data,
        batch_size=cfg.run.batch_size,
        rank=accelerator.process_index,
        world_size=accelerator.num_processes,
        seed=cfg.run.seed + 7919 * step,  # a resumed run draws fresh, still reproducible, samples and masks
    )
    val_loader = make_val_loader(
        cfg.data, batch_size=cfg.run.batch_size, rank=accelerator.process_index, world_size=accelerator.num_processes
    )
    batches = forever(train_loader)

    def run_eval(at_step: int) -> None:
        scores, panels = evaluate(
            task,
            val_loader,
            accelerator,
            cfg.data,
            max_batches=cfg.run.eval_batches,
            num_panels=cfg.run.num_panels,
            with_mask_iou=cfg.stage == "detector",
        )
        tracker.log_metrics({f"val/{k}": v for k, v in scores.items()}, at_step)
        for i, panel in enumerate(panels):
            tracker.log_image(panel, key=f"panel_{i}", step=at_step)
        if is_main:
            with open(run_dir / "eval.jsonl", "a") as fh:
                fh.write(json.dumps({"step": at_step, **scores}) + "\n")
        accelerator.print(f"step {at_step}: " + "  ".join(f"{k}={v:.4f}" for k, v in scores.items()))

    # -- the loop -----------------------------------------------------------------------------------------------
    if cfg.run.eval_at_start and step == 0:
        run_eval(0)
    preemption = PreemptionFlag().install()
    accelerator.print(
        f"stage={cfg.stage} ranks={accelerator.num_processes} ({accelerator.distributed_type}) "
        f"precision={'bf16' if bf16 else 'fp32'} effective_batch={effective_batch} run_dir={run_dir}"
    )
    progress = tqdm(total=cfg.run.max_steps, initial=step, disable=not is_main, desc=f"{cfg.stage}", unit="step")
    nonfinite_in_a_row = 0
    running: dict[str, list[float]] = {}
    while step < cfg.run.max_steps:
        for _ in range(cfg.run.grad_accum):
            batch = prepare_batch(next(batches), device=accelerator.device, cfg=cfg.data, train=True)
            with accelerator.accumulate(*task.networks.values()):
                losses = task.train_step(batch, step)
        step += 1
        progress.update(1)

        skipped = int(losses.pop("skipped", torch.tensor(0.0)).item())
        nonfinite_in_a_row = nonfinite_in_a_row + 1 if skipped else 0
        state["nonfinite_skips"] = int(state.get("nonfinite_skips", 0)) + skipped
        if nonfinite_in_a_row >= cfg.run.max_nonfinite_steps:
            accelerator.print(
                f"aborting at step {step}: {nonfinite_in_a_row} steps in a row had non-finite gradients. "
                "Lower optim.lr, check the data, or resume from the last checkpoint with a fix."
            )
            tracker.end(status="FAILED")
            return 1
        for key, value in losses.items():
            running.setdefault(key, []).append(float(value))

        if step % cfg.run.log_every == 0 or step == cfg.run.max_steps:
            means = {k: sum(v) / len(v) for k, v in running.items()}
            running.clear()
            reduced = accelerator.reduce(torch.tensor(list(means.values()), device=accelerator.device), "mean")
            metrics = {f"train/{k}": float(v) for k, v in zip(means, reduced.tolist())}
            metrics["train/nonfinite_skips"] = state["nonfinite_skips"]
            metrics["train/corrupt_samples"] = float(getattr(train_loader, "corrupt_count", 0))
            metrics["train/lr"] = task.current_lr(step)
            tracker.log_metrics(metrics, step)
            progress.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in list(metrics.items())[:4]})

        if (cfg.run.eval_every and step % cfg.run.eval_every == 0) or step == cfg.run.max_steps:
            run_eval(step)

        stop = preemption.agreed(accelerator)
        if stop or step % cfg.run.checkpoint_every == 0 or step == cfg.run.max_steps:
            save_checkpoint(
                accelerator, run_dir, step, ema=task.ema, trainer_state=state, keep=cfg.run.keep_checkpoints,
                plain={k: accelerator.unwrap_model(v) for k, v in task.networks.items()},
            )  # fmt: skip
        if stop:
            accelerator.print(f"stop signal ({preemption.signal_name or 'on another rank'}): saved step {step}")
            if is_main:
                (run_dir / "REQUEUE").write_text(f"{step}\n")
            tracker.end(status="KILLED")
            progress.close()
            return REQUEUE_EXIT_CODE
    progress.close()
    preemption.uninstall()

    # -- were the replicas really in sync? (collective) ----------------------------------------------------------
    report = replica_report(accelerator, {k: accelerator.unwrap_model(v) for k, v in task.networks.items()})
    if is_main:
        (run_dir / "replicas.json").write_text(json.dumps(report, indent=2))
        if not report["in_sync"]:
            log.warning("DDP replicas diverged: parameter checksums %s", report["checksums"])

    # -- export the EMA weights ---------------------------------------------------------------------------------
    if is_main:
        final_dir = task.export(run_dir / "final", cfg)
        tracker.log_dir(final_dir, "final")
        accelerator.print(f"done: final weights in {final_dir}")
        if cfg.run.log_model and tracker.run_id and cfg.stage in ("joint", "gan_baseline"):
            log_model(final_dir, default_tracking_uri(cfg.run.output_dir), tracker.run_id, cfg.run.register_model)
    tracker.end()
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return 0


if __name__ == "__main__":
    sys.exit(main())
