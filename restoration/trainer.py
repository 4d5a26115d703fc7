"""The trainer behind ``python -m restoration.train CONFIG.yaml [a.b.c=value ...]`` (`restoration.train` parses the
command line and imports this module only when there is something to train or check, so `--help` is instant).

Works the same under ``accelerate launch -m restoration.train`` and ``torchrun -m restoration.train``. `train` reads
top to bottom: config -> accelerator -> data -> task (the stage's networks, losses and steps) -> one `prepare` ->
resume -> tracking -> steps (with eval, checkpoints and the preemption check) -> replica check -> export. The
settings are in `restoration/recipe.py`, the GAN logic of each stage in `restoration/tasks/`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs, PartialState
from accelerate.utils import gather_object, set_seed
from tqdm.auto import tqdm

from restoration.anchors import fill_method
from restoration.carry import PREPARED
from restoration.checkpoint import (
    CheckpointWriteError,
    RunDirInUse,
    RunLock,
    acquire_run_lock,
    complete_checkpoints,
    load_latest_readable,
    save_checkpoint,
)
from restoration.config import (
    ConfigError,
    describe_fields,
    dump_yaml,
    flatten,
    format_fields,
    load_config,
    read_yaml,
    save_yaml,
)
from restoration.data.batch_guard import DataStall, GuardedBatches, StopRequested
from restoration.data.builtin import prepare_builtin_shards
from restoration.data.shards import (
    ShardMismatch,
    make_train_loader,
    make_val_loader,
    prepare_batch,
    read_manifest,
    verify_shards,
)
from restoration.distributed import is_peer_loss, process_group_kwargs, replica_report, say, sync_batchnorm
from restoration.pipeline import Pipeline
from restoration.preemption import REQUEUE_EXIT_CODE, PreemptionFlag
from restoration.preflight import preflight
from restoration.recipe import RunConfig, TrainConfig, check_recipe, describe_changes, resume_changes
from restoration.run_metadata import log_run_origin
from restoration.run_status import RunStatus, mark_finished, move_aside, run_status, unmark_finished
from restoration.scoring import CONTEST_KEYS, KEYS
from restoration.tasks import Task, build_task
from restoration.throughput import Throughput
from restoration.tracking import Tracker, default_tracking_uri, git_sha
from restoration.validation import anchor_scores, choice_lines, choose, evaluate
from restoration.weights import SETTINGS_TABLE_FILE, VAL_ANCHORS_FILE

log = logging.getLogger("restoration.train")
CANDIDATES_TABLE = "inference_candidates.json"  # in the MLflow run: the same as a table, a row per candidate and step


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
            DistributedDataParallelKwargs(broadcast_buffers=False, find_unused_parameters=run.find_unused_parameters),
            process_group_kwargs(run.dist_timeout_s),
        ],
    )


def with_builtin_data(cfg: TrainConfig, accelerator: Accelerator) -> TrainConfig:
    """`data.root=builtin`: shards of the photos bundled with scikit-image, built once by the main process."""
    if cfg.data.root != Path("builtin"):
        return cfg
    if accelerator.is_main_process:
        prepare_builtin_shards(cfg.run.output_dir, cfg.data.image_size)
    accelerator.wait_for_everyone()
    root = prepare_builtin_shards(cfg.run.output_dir, cfg.data.image_size)
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=root))


def verified_shards(cfg: TrainConfig, accelerator: Accelerator, run_dir: Path) -> bool:
    """Every shard is the file its manifest records (`data.verify_shards`; a collective): the ranks hash their shares
    of the shards not verified yet in this run (`run_dir/verified_shards.json`); False on every rank when one is
    missing or differs (the main process says which and what to do)."""
    if not cfg.data.verify_shards:
        return True
    cache = run_dir / "verified_shards.json"
    try:
        verified = json.loads(cache.read_text()) if cache.is_file() else {}
    except (OSError, ValueError):
        verified = {}  # an unreadable record only costs hashing again
    error, fresh = "", {}
    try:
        fresh = verify_shards(cfg.data.root, verified=verified, rank=accelerator.process_index,
                              world_size=accelerator.num_processes, progress=accelerator.is_main_process)  # fmt: skip
    except (ShardMismatch, FileNotFoundError) as err:
        error = str(err)
    results = gather_object([(error, fresh)]) if accelerator.num_processes > 1 else [(error, fresh)]
    errors = [e for e, _ in results if e]
    if errors:
        if accelerator.is_main_process:
            more = f" (and {len(errors) - 1} more shards)" if len(errors) > 1 else ""
            print(f"error: {errors[0]}{more}", file=sys.stderr)
        return False
    hashed = {k: v for _, f in results for k, v in f.items()}
    if accelerator.is_main_process:
        tmp = cache.with_name(cache.name + ".tmp")
        tmp.write_text(json.dumps({**verified, **hashed}, indent=1))
        tmp.replace(cache)
        total = len(read_manifest(cfg.data.root)["shards"])
        earlier = ", the others verified earlier in this run and unchanged" if len(hashed) < total else ""
        print(f"shards: all {total} match {Path(cfg.data.root) / 'manifest.json'} (hashed {len(hashed)} of {total}"
              f"{earlier})")  # fmt: skip
    return True


def prepared_task(cfg: TrainConfig, accelerator: Accelerator, bf16: bool) -> Task:
    """The stage's networks, optimizers and EMA, prepared in one call in a fixed order (= the checkpoint layout).

    The same seed on every rank before building gives the same initial weights, buffers (MAT's noise_const) and
    EMA copies everywhere; afterwards each rank gets its own random stream."""
    set_seed(cfg.run.seed)
    task = build_task(cfg, accelerator, images_per_step=cfg.run.batch_size * cfg.run.grad_accum, bf16=bf16)
    parts = task.parts
    if cfg.run.sync_batchnorm and accelerator.num_processes > 1:
        parts.networks = {k: sync_batchnorm(v, accelerator.device) for k, v in parts.networks.items()}
    names, opt_names = list(parts.networks), list(parts.optimizers)
    prepared = accelerator.prepare(*parts.networks.values(), *parts.optimizers.values())
    parts.networks = dict(zip(names, prepared[: len(names)]))
    parts.optimizers = dict(zip(opt_names, prepared[len(names) :]))
    for ema in parts.ema.values():
        ema.to(accelerator.device)
    set_seed(cfg.run.seed, device_specific=True)
    return task


def start_tracking(cfg: TrainConfig, accelerator: Accelerator, state: dict, run_dir: Path, bf16: bool,
                   config_file: Path | None = None) -> Tracker:  # fmt: skip
    """The MLflow run (main process only; resumed from the checkpoint's run id) with the resolved config, where it
    came from (`run_metadata`: user, entry point, git, SLURM job, a description) and the shards as its dataset."""
    tracker = Tracker(enabled=accelerator.is_main_process and cfg.run.tracking)
    tracker.start(
        tracking_uri=default_tracking_uri(cfg.run.output_dir),
        experiment=cfg.run.experiment,
        run_name=cfg.run.name,
        run_id=state.get("mlflow_run_id"),
        artifact_root=cfg.run.output_dir.resolve() / "mlruns",
    )
    if cfg.run.system_metrics:
        tracker.start_system_metrics(resume=state.get("mlflow_run_id") is not None)
    state["mlflow_run_id"] = tracker.run_id
    tracker.log_params(
        {
            **flatten(cfg),
            "world_size": accelerator.num_processes,
            "effective_batch": effective_batch(cfg, accelerator),
            "git_sha": git_sha(),
            "precision": "bf16" if bf16 else "fp32",
        }
    )
    tracker.log_artifact(run_dir / "config.yaml")
    log_run_origin(tracker, stage=cfg.stage, config_file=config_file, data_root=cfg.data.root,
                   world_size=accelerator.num_processes)  # fmt: skip
    return tracker


def effective_batch(cfg: TrainConfig, accelerator: Accelerator) -> int:
    return cfg.run.batch_size * cfg.run.grad_accum * accelerator.num_processes


def forever(loader) -> Iterator[dict]:
    """Cycle a loader whose epochs have a fixed length (equal on every rank)."""
    while True:
        yield from loader


def stage_pipeline(task: Task, cfg: TrainConfig, accelerator: Accelerator) -> Pipeline:
    """The stage's EMA networks as the pipeline its export will be (the same colorizer resolution)."""
    return Pipeline.from_networks(task.parts.inference_networks(), accelerator.device, color_size=cfg.data.image_size)


def run_eval(task: Task, val_loader, accelerator: Accelerator, cfg: TrainConfig, tracker: Tracker, run_dir: Path,
             step: int) -> None:  # fmt: skip
    """Restore the val split with the EMA networks (default settings), log scores and panels, append to
    `eval.jsonl`."""
    pipeline = stage_pipeline(task, cfg, accelerator)
    scores, panels = evaluate(
        pipeline, pipeline.defaults, val_loader, accelerator, cfg.data, max_batches=cfg.run.eval_batches,
        num_panels=cfg.run.num_panels, scores_masks=task.scores_masks,
    )  # fmt: skip
    log_eval(scores, panels, accelerator, tracker, run_dir, step)


def log_eval(scores: dict[str, float], panels: list, accelerator: Accelerator, tracker: Tracker, run_dir: Path,
             step: int, label: str = "") -> None:  # fmt: skip
    tracker.log_metrics({f"val/{k}": v for k, v in scores.items()}, step)
    for i, panel in enumerate(panels):
        tracker.log_image(panel, key=f"panel_{i}", step=step)
    if accelerator.is_main_process:
        with open(run_dir / "eval.jsonl", "a") as fh:
            fh.write(json.dumps({"step": step, **scores}) + "\n")
    say(accelerator, f"step {step}{label}: " + "  ".join(f"{k}={v:.4f}" for k, v in scores.items()))


def train_step(task: Task, batches: GuardedBatches, accelerator: Accelerator, cfg: TrainConfig, step: int) -> dict:
    """One optimizer step: `run.grad_accum` micro-batches, each fetched, prepared on the device and trained on."""
    for _ in range(cfg.run.grad_accum):
        batch = prepare_batch(next(batches), device=accelerator.device, cfg=cfg.data, train=True)
        with accelerator.accumulate(*task.parts.networks.values()):
            losses = task.train_step(batch, step)
    return losses


def describe_shards(loader) -> str:
    urls = loader.urls
    names = ", ".join(Path(u).name for u in urls[:4]) + (f" and {len(urls) - 4} more" if len(urls) > 4 else "")
    last = loader.shard_errors.last
    return f"{len(urls)} train shard(s) in {Path(urls[0]).parent} ({names})" + (f"; last error: {last}" if last else "")


def train_metrics(
    running: dict[str, list[float]], accelerator: Accelerator, state: dict, train_loader
) -> dict[str, float]:
    """Means over the last logging window averaged over ranks, and the counters summed over ranks (collective)."""
    means = {k: sum(v) / len(v) for k, v in running.items()}
    running.clear()
    reduced = accelerator.reduce(torch.tensor(list(means.values()), device=accelerator.device), "mean")
    corrupt = torch.tensor([float(train_loader.corrupt_count)], device=accelerator.device)
    if accelerator.num_processes > 1:
        corrupt = accelerator.reduce(corrupt, "sum")
    return {f"train/{k}": float(v) for k, v in zip(means, reduced.tolist())} | {
        "train/nonfinite_skips": state["nonfinite_skips"],
        "train/corrupt_samples": float(corrupt.item()),
    }


def report_throughput(speed: Throughput, accelerator: Accelerator, run_dir: Path) -> None:
    """Print the main process's steady-state training speed and keep it in `throughput.json`."""
    say(accelerator, speed.describe())
    if accelerator.is_main_process:
        speed.write(run_dir / "throughput.json")


def final_eval(task: Task, val_loader, accelerator: Accelerator, cfg: TrainConfig, tracker: Tracker, run_dir: Path
               ) -> tuple[dict | None, dict, dict]:  # fmt: skip
    """The last validation (collective): the settings the export keeps are chosen on the val split
    (`validation.choose`; MAT or a classical fill, the colorizer's chroma strength), and the val score logged for
    the last step is theirs, the score `restoration-predict` gives with the export; the classical anchors are scored
    on the same images. Returns (the settings to record, or None when nothing was chosen; the scores per candidate;
    the anchors' report, `VAL_ANCHORS_FILE`'s content)."""
    step = cfg.run.max_steps
    pipeline = stage_pipeline(task, cfg, accelerator)
    choosing = cfg.run.choose_settings and pipeline.has_choices
    if choosing:
        chosen, results, panels = choose(
            pipeline, val_loader, accelerator, cfg.data, max_batches=cfg.run.eval_batches,
            num_panels=cfg.run.num_panels, scores_masks=task.scores_masks,
        )  # fmt: skip
        for line in choice_lines(results, chosen, width=18):
            say(accelerator, line)
    else:
        run_eval(task, val_loader, accelerator, cfg, tracker, run_dir, step)
    anchors = val_anchors(val_loader, accelerator, cfg, tracker, step)
    if not choosing:
        return None, {}, anchors
    log_candidates(tracker, results, chosen.label(), pipeline.defaults.label(), step)
    tracker.log_params({f"inference.{k}": v for k, v in chosen.recorded().items()})
    log_eval(results[chosen.label()], panels, accelerator, tracker, run_dir, step, f" ({chosen.label()})")
    return chosen.recorded(), results, anchors


def log_candidates(tracker: Tracker, results: dict[str, dict], chosen: str, default: str, step: int) -> None:
    """The candidate settings as one MLflow table (`CANDIDATES_TABLE`) and two metrics, the chosen setting's score
    and its gain over the pipeline's default setting: a metric per candidate and score would be ~20 single points
    that crowd the run's charts."""
    labels = list(results)
    table = {"setting": labels, **{k: [results[label][k] for label in labels] for k in KEYS}}
    table |= {"chosen": [label == chosen for label in labels], "default": [label == default for label in labels]}
    tracker.log_table(table, CANDIDATES_TABLE, step)
    metrics = {"inference/chosen_score": results[chosen]["score"]}
    if default in results:
        metrics["inference/gain_over_default"] = results[chosen]["score"] - results[default]["score"]
    tracker.log_metrics(metrics, step)


def val_anchors(val_loader, accelerator: Accelerator, cfg: TrainConfig, tracker: Tracker, step: int) -> dict:
    """The classical anchors (`validation.VAL_ANCHORS`) on the val images the model is scored on (collective):
    printed, logged as `val_anchor/<name>/score`, returned as `VAL_ANCHORS_FILE`'s content."""
    scores, images = anchor_scores(val_loader, accelerator, cfg.data, max_batches=cfg.run.eval_batches)
    for name, m in scores.items():
        ran = fill_method("telea") if name == "telea" else name  # without OpenCV, Telea's fill is the biharmonic one
        label = name if ran == name else f"{name} ({ran})"
        say(accelerator, f"anchor {label:>21} on the val split: " + "  ".join(f"{k}={m[k]:.4f}" for k in CONTEST_KEYS))
    tracker.log_metrics({f"val_anchor/{name}/score": m["score"] for name, m in scores.items()}, step)
    return {"split": "val", "images": images, "scores": scores}


def finish(task: Task, val_loader, cfg: TrainConfig, accelerator: Accelerator, tracker: Tracker, run_dir: Path
           ) -> None:  # fmt: skip
    """The final validation and the choice of settings (collective), the DDP replica check (collective), the export
    of the EMA weights with the chosen settings, the MLflow model."""
    chosen, results, anchors = final_eval(task, val_loader, accelerator, cfg, tracker, run_dir)
    plain = {k: accelerator.unwrap_model(v) for k, v in task.parts.networks.items()}
    report = replica_report(accelerator, plain)
    if not accelerator.is_main_process:
        return
    (run_dir / "replicas.json").write_text(json.dumps(report, indent=2))
    if not report["in_sync"]:
        log.warning("DDP replicas diverged: parameter checksums %s", report["checksums"])
    final_dir = task.parts.export(run_dir / "final", cfg, inference=chosen)
    if results:
        table = {"chosen": chosen, "split": "val", "scores": results}
        (final_dir / SETTINGS_TABLE_FILE).write_text(json.dumps(table, indent=2))
    (final_dir / VAL_ANCHORS_FILE).write_text(json.dumps(anchors, indent=2))
    tracker.log_dir(final_dir, "final")
    say(accelerator, f"done: final weights in {final_dir}")
    if cfg.run.log_model and tracker.run_id and task.logs_model:
        log_model(final_dir, default_tracking_uri(cfg.run.output_dir), tracker.run_id, cfg.run.register_model)


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


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("accelerate", "mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def claim_run_dir(run_dir: Path, accelerator: Accelerator, *, fresh: bool = False) -> tuple[RunLock | None, int]:
    """The main process creates and locks the run directory (`fresh`: after moving an existing one aside); if
    another training holds it (exit code 1) or it cannot be written (exit code 2), every rank gives up: (None, exit
    code). A collective: no rank looks into the directory before it is settled."""
    lock, refused = None, 0.0
    if accelerator.is_main_process:
        try:
            if fresh:
                if run_dir.is_dir():
                    acquire_run_lock(run_dir).release()  # never move a directory another training holds
                moved = move_aside(run_dir)
                if moved is not None:
                    print(f"--fresh: moved the previous {run_dir.name} to {moved}")
            run_dir.mkdir(parents=True, exist_ok=True)
            lock = acquire_run_lock(run_dir)
        except RunDirInUse as err:
            print(f"error: {err}", file=sys.stderr)
            refused = 1.0
        except OSError as err:
            where = err.filename or run_dir
            print(f"error: cannot write the run directory {run_dir} ({where}: {err.strerror or err}); point "
                  "run.output_dir at a directory this user can write", file=sys.stderr)  # fmt: skip
            refused = 2.0
    flag = torch.tensor([refused], device=accelerator.device)
    if accelerator.num_processes > 1:
        flag = accelerator.reduce(flag, reduction="sum")
    if flag.item() > 0:
        return None, int(flag.item())
    return lock or RunLock(None, run_dir), 0


def resumed_config_changes(cfg: TrainConfig, run_dir: Path, accelerator: Accelerator) -> list | int:
    """Compare the run-defining settings (`recipe.RESUME_DEFINING`) with the run's config.yaml before anything is
    written, when the run resumes. Returns the changes to record (empty when none; only the main process knows
    them), or the exit code 2 on every rank when they are refused: another stage always, anything else unless
    `run.allow_config_change=true`."""
    changes: list = []
    refused = 0.0
    saved_path = run_dir / "config.yaml"
    if accelerator.is_main_process and cfg.run.resume != "never" and complete_checkpoints(run_dir):
        try:
            saved = read_yaml(saved_path) if saved_path.is_file() else {}
            changes = resume_changes(saved if isinstance(saved, dict) else {}, cfg)
        except ConfigError as err:
            print(f"config error: {err}; that file records the settings of the run being resumed: fix it, or "
                  "remove it to resume without comparing them", file=sys.stderr)  # fmt: skip
            refused = 1.0
        stage = [c for c in changes if c[0] == "stage"]
        if stage:
            print(
                f"config error: {saved_path}: this run trains the {stage[0][1]} stage; a run cannot change its stage. "
                f"Train {stage[0][2]} as a new run (another run.name), starting from this one with "
                f"init.from_weights=[{run_dir}]",
                file=sys.stderr,
            )
            refused = 1.0
        elif changes and not cfg.run.allow_config_change:
            print(
                f"config error: {saved_path}: this run was trained with other settings, resuming would mix them: "
                f"{describe_changes(changes)}. Resume with that file's settings, train a new run (another "
                "run.name), or add run.allow_config_change=true to go on with the new ones (recorded in MLflow)",
                file=sys.stderr,
            )
            refused = 1.0
    flag = torch.tensor([refused], device=accelerator.device)
    if accelerator.num_processes > 1:
        flag = accelerator.reduce(flag, reduction="sum")
    return 2 if flag.item() > 0 else changes


def resume(cfg: TrainConfig, accelerator: Accelerator, run_dir: Path, task: Task) -> dict | None:
    """The trainer state of the newest readable checkpoint (`run.resume=auto|must`), a fresh one, or None when every
    checkpoint is unreadable (the caller stops: starting over would silently discard them)."""
    state: dict = {"step": 0, "mlflow_run_id": None, "nonfinite_skips": 0}
    if cfg.run.resume == "never" or not complete_checkpoints(run_dir):
        return state
    checkpoint, loaded = load_latest_readable(accelerator, run_dir, ema=task.parts.ema)
    if checkpoint is None:
        say(
            accelerator,
            f"error: none of the checkpoints in {run_dir / 'checkpoints'} can be read (see the warnings above). "
            "Move them away, or add --fresh to move the run aside and train from the start.",
            file=sys.stderr,
        )
        return None
    state.update(loaded)
    say(accelerator, f"resuming from {checkpoint} at step {state['step']}")
    return state


def exit_lost_peer(err: Exception) -> None:
    """A rank whose collective failed because another rank died, hung past `run.dist_timeout_s` or became
    unreachable says so and exits with 1 instead of a transport traceback."""
    state = PartialState()
    first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    print(
        f"rank {state.process_index} of {state.num_processes}: lost a peer rank ({first_line}). Another rank's "
        "process died, hung for longer than run.dist_timeout_s, or its node went away; this rank stops. Rerun "
        "the same command (or requeue the job) to resume from the last complete checkpoint.",
        file=sys.stderr,
        flush=True,
    )
    sys.stdout.flush()
    os._exit(1)  # not `return`: tearing down a process group whose peer is gone can block or abort


def is_first_rank() -> bool:
    """Before the accelerator exists: whether this process is the job's rank 0 (it speaks for all)."""
    return os.environ.get("RANK", "0") == "0"


def announce(message: str, *, error: bool = False) -> None:
    """One line from rank 0 (before the accelerator exists); errors go to stderr with the prefix `error: `."""
    if is_first_rank():
        print(f"error: {message}" if error else message, file=sys.stderr if error else sys.stdout, flush=True)


def before_creating(cfg: TrainConfig, ns: argparse.Namespace, run_dir: Path) -> int | None:
    """Everything decided before a run directory or an MLflow run exists: the preflight's problems, `--check` and
    `--print-config`, and whether the run directory starts, resumes, is done or is refused (`run_status`). Returns
    the exit code when the command ends here, None when training should go on."""
    problems = preflight(cfg)
    if ns.print_config or ns.check:
        print(dump_yaml(cfg), end="")
    for problem in problems:
        announce(problem, error=True)
    if ns.print_config or problems:
        return 2 if problems else 0
    status = RunStatus("start") if ns.fresh else run_status(run_dir, cfg.run.resume, cfg.run.max_steps)
    if status.action == "refuse":
        announce(status.message, error=True)
        return 2
    if ns.check:
        moved = "; --fresh: the existing directory would be moved aside" if ns.fresh and run_dir.exists() else ""
        plan = {"start": f"{run_dir}: would start a new run{moved}",
                "resume": f"{run_dir}: would resume from its newest checkpoint", "done": status.message}  # fmt: skip
        announce(f"check passed: {plan[status.action]}")
        return 0
    if status.action == "done":
        announce(status.message)
        return 0
    return None


def run_command(config_path: Path | None, overrides: list[str], ns: argparse.Namespace) -> int:
    """`restoration-train` once its arguments are parsed (`restoration.train`): check, then train or say why not."""
    if ns.help_config:
        print(format_fields(describe_fields(TrainConfig)), end="")
        return 0
    try:
        cfg = load_config(TrainConfig, config_path, overrides)
        check_recipe(cfg)
    except ConfigError as err:
        if is_first_rank():
            more = "; every key with its type and default: --help-config" if "unknown key" in str(err) else ""
            print(f"config error: {err}{more}", file=sys.stderr)
        return 2
    run_dir = (cfg.run.output_dir / cfg.run.name).resolve()
    if ns.print_run_dir:
        print(run_dir)
        return 0
    code = before_creating(cfg, ns, run_dir)
    if code is not None:
        return code
    setup_logging()
    accelerator = make_accelerator(cfg.run)
    new_dir = not run_dir.exists() or ns.fresh
    lock, refused = claim_run_dir(run_dir, accelerator, fresh=ns.fresh)
    if lock is None:
        return refused
    preemption = PreemptionFlag().install()
    code = 1
    try:
        changes = resumed_config_changes(cfg, run_dir, accelerator)
        if isinstance(changes, int):
            code = changes
            return code
        code = train(cfg, accelerator, run_dir, preemption, changes, config_path)
        return code
    except CheckpointWriteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except Exception as err:
        if is_peer_loss(err) and torch.distributed.is_initialized():
            exit_lost_peer(err)
        raise
    finally:
        preemption.uninstall()
        lock.release()
        if code == 2 and new_dir and accelerator.is_main_process and not complete_checkpoints(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)  # a refused start leaves nothing behind to resume into


def train(cfg: TrainConfig, accelerator: Accelerator, run_dir: Path, preemption: PreemptionFlag,
          changes: list | None = None, config_file: Path | None = None) -> int:  # fmt: skip
    """`changes`: the run-defining settings this resume changes with `run.allow_config_change=true` (main process),
    recorded in config.yaml (the previous one kept as config.before-step-N.yaml) and MLflow once the resume worked."""
    # -- run directory, data, the stage resumed from its newest readable checkpoint, its MLflow run ---------------
    is_main = accelerator.is_main_process
    if is_main:
        (run_dir / "REQUEUE").unlink(missing_ok=True)
    as_given = cfg
    cfg = with_builtin_data(cfg, accelerator)
    if not verified_shards(cfg, accelerator, run_dir):
        return 2
    bf16 = use_bf16(cfg.run)
    try:
        task = prepared_task(cfg, accelerator, bf16)
    except (ValueError, KeyError, FileNotFoundError) as err:  # a weights file or init source that does not fit
        print(f"error: cannot build the {cfg.stage} stage: {err}", file=sys.stderr)
        return 2
    parts = task.parts
    state = resume(cfg, accelerator, run_dir, task)
    if state is None:
        return 1
    step = int(state["step"])
    if is_main:
        if step < cfg.run.max_steps:
            unmark_finished(run_dir)  # a finished run trained further (run.max_steps raised)
        if changes and (run_dir / "config.yaml").is_file():
            (run_dir / "config.yaml").replace(run_dir / f"config.before-step-{step:08d}.yaml")
        # the override is for this resume only: a later one starting from this file is compared again
        save_yaml(dataclasses.replace(as_given, run=dataclasses.replace(as_given.run, allow_config_change=False)),
                  run_dir / "config.yaml")  # fmt: skip
    tracker = start_tracking(cfg, accelerator, state, run_dir, bf16, config_file)
    if changes:
        say(accelerator, f"resumed at step {step} with changed settings (run.allow_config_change=true): "
                         f"{describe_changes(changes)}")  # fmt: skip
        tracker.set_tags({"resume.changed_keys": describe_changes(changes), "resume.changed_at_step": str(step),
                          f"resume.step_{step}.changed_keys": describe_changes(changes)})  # fmt: skip
    rank, world = accelerator.process_index, accelerator.num_processes
    # a resumed run draws fresh, still reproducible, samples and masks
    train_loader = make_train_loader(
        cfg.data, batch_size=cfg.run.batch_size, rank=rank, world_size=world, seed=cfg.run.seed + 7919 * step
    )
    val_loader = make_val_loader(cfg.data, batch_size=cfg.run.batch_size, rank=rank, world_size=world)
    batches = GuardedBatches(
        forever(train_loader),
        stall_timeout_s=cfg.data.stall_timeout_s,
        should_stop=lambda: preemption.requested,
        describe=lambda: describe_shards(train_loader),
        on_stall=train_loader.stop,
    )

    # -- the loop -----------------------------------------------------------------------------------------------
    if cfg.run.eval_at_start and step == 0:
        run_eval(task, val_loader, accelerator, cfg, tracker, run_dir, 0)
    say(
        accelerator,
        f"stage={cfg.stage} ranks={world} ({accelerator.distributed_type}) precision={'bf16' if bf16 else 'fp32'} "
        f"effective_batch={effective_batch(cfg, accelerator)} run_dir={run_dir}",
    )
    progress = tqdm(total=cfg.run.max_steps, initial=step, disable=not is_main, desc=f"{cfg.stage}", unit="step")
    nonfinite_in_a_row = 0
    running: dict[str, list[float]] = {}
    speed = Throughput(effective_batch(cfg, accelerator))
    while step < cfg.run.max_steps:
        started = time.perf_counter()
        try:
            losses = train_step(task, batches, accelerator, cfg, step)
        except StopRequested:  # a stop signal while waiting for data: save where the run is
            losses = None
        except DataStall as err:
            print(f"error: rank {rank} of {world}: {err}" if world > 1 else f"error: {err}", file=sys.stderr)
            tracker.end(status="FAILED")
            return 1
        if losses is not None:
            step += 1
            progress.update(1)
            skipped = int(losses.pop("skipped", torch.tensor(0.0)).item())  # waits for the device
            speed.add(time.perf_counter() - started)
            nonfinite_in_a_row = nonfinite_in_a_row + 1 if skipped else 0
            state["nonfinite_skips"] = int(state.get("nonfinite_skips", 0)) + skipped
            if nonfinite_in_a_row >= cfg.run.max_nonfinite_steps:
                say(
                    accelerator,
                    f"aborting at step {step}: {nonfinite_in_a_row} steps in a row had non-finite gradients. "
                    "Lower optim.lr, check the data, or resume from the last checkpoint with a fix.",
                    file=sys.stderr,
                )
                tracker.end(status="FAILED")
                return 1
            for key, value in losses.items():
                running.setdefault(key, []).append(float(value))
            if step % cfg.run.log_every == 0 or step == cfg.run.max_steps:
                metrics = (
                    train_metrics(running, accelerator, state, train_loader)
                    | {"train/lr": parts.current_lr(step)}
                    | speed.window()
                )
                tracker.log_metrics(metrics, step)
                progress.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in list(metrics.items())[:4]})
            if cfg.run.eval_every and step % cfg.run.eval_every == 0 and step < cfg.run.max_steps:
                run_eval(task, val_loader, accelerator, cfg, tracker, run_dir, step)

        stop = preemption.agreed(accelerator)
        if stop or step % cfg.run.checkpoint_every == 0 or step == cfg.run.max_steps:
            state["mlflow_run_id"] = tracker.run_id or state.get("mlflow_run_id")  # never overwritten with nothing
            prepared = {"networks": list(parts.networks), "optimizers": list(parts.optimizers)}  # the files' order
            save_checkpoint(
                accelerator, run_dir, step, ema=parts.ema, keep=cfg.run.keep_checkpoints,
                trainer_state={**state, PREPARED: prepared},
                plain={k: accelerator.unwrap_model(v) for k, v in parts.networks.items()},
            )  # fmt: skip
        if stop:
            report_throughput(speed, accelerator, run_dir)
            say(accelerator, f"stop signal ({preemption.signal_name or 'on another rank'}): saved step {step}")
            if is_main:
                (run_dir / "REQUEUE").write_text(f"{step}\n")
            tracker.end(status="KILLED")
            progress.close()
            return REQUEUE_EXIT_CODE
    progress.close()
    report_throughput(speed, accelerator, run_dir)

    finish(task, val_loader, cfg, accelerator, tracker, run_dir)
    if is_main:
        mark_finished(run_dir, step, mlflow_run_id=tracker.run_id or state.get("mlflow_run_id"))
    tracker.end()
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return 0
