"""Whether a run directory starts, resumes or is already done, decided before anything is written.

The conventions are those of the tools users know (wandb's `resume`, Lightning's `ckpt_path`): `run.resume=auto`
resumes when there is a checkpoint, `must` refuses to start without one, `never` refuses a directory that already
holds a run. A finished run (`FINISHED.json`, written after its export and MLflow model) is never trained or
exported again by rerunning its command: that used to spend a minute and log a second model into the same run.
Raising `run.max_steps` trains it further; `--fresh` moves the old directory aside (nothing is deleted) and starts
over.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from restoration.checkpoint import complete_checkpoints

FINISHED = "FINISHED.json"
Action = Literal["start", "resume", "done", "refuse"]


@dataclass(frozen=True)
class RunStatus:
    """What to do with a run directory, and the line that tells the user."""

    action: Action
    message: str = ""


def finished_step(run_dir: Path) -> int | None:
    """The step a finished run ended at; None when it has not finished (or the record is unreadable)."""
    try:
        return int(json.loads((run_dir / FINISHED).read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def mark_finished(run_dir: Path, step: int, **facts: str | None) -> Path:
    """Record that the run trained to `step` and exported (atomic)."""
    path = run_dir / FINISHED
    tmp = path.with_name(f".{FINISHED}.tmp")
    record = {"step": step, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **facts}
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(path)
    return path


def unmark_finished(run_dir: Path) -> None:
    """A finished run trained further is unfinished until its new end."""
    (run_dir / FINISHED).unlink(missing_ok=True)


def run_status(run_dir: Path, resume: str, max_steps: int) -> RunStatus:
    """The decision for `run_dir` under `run.resume=resume` (auto, must, never) and `run.max_steps`."""
    checkpoints = complete_checkpoints(run_dir) if run_dir.is_dir() else []
    done_at = finished_step(run_dir)
    fresh = "choose another run.name, or add --fresh to move this run aside and start over"
    if resume == "never" and (checkpoints or done_at is not None):
        held = f"finished at step {done_at}" if done_at is not None else f"{len(checkpoints)} checkpoint(s)"
        return RunStatus("refuse", f"run.resume=never: {run_dir} already holds a run ({held}); {fresh}")
    if done_at is not None and max_steps <= done_at:
        return RunStatus(
            "done",
            f"{run_dir} finished at step {done_at}: nothing to train (final weights in {run_dir / 'final'}). "
            f"Raise run.max_steps above {done_at} to train it further, or {fresh}",
        )
    if resume == "must" and not checkpoints:
        return RunStatus("refuse", f"run.resume=must: no complete checkpoint in {run_dir / 'checkpoints'} to resume "
                                   "from; use run.resume=auto to start a new run there")  # fmt: skip
    return RunStatus("resume" if checkpoints else "start")


def move_aside(run_dir: Path) -> Path | None:
    """`--fresh`: rename an existing run directory to `<name>.replaced-<UTC time>` beside it; None when absent."""
    if not run_dir.exists():
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    target = run_dir.with_name(f"{run_dir.name}.replaced-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = run_dir.with_name(f"{run_dir.name}.replaced-{stamp}-{n}")
    run_dir.rename(target)
    return target
