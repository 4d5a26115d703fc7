"""Training speed as a user reads it: images per second of the steps themselves.

Timed around the training steps only (the batch fetch included, so a slow loader shows), never around
evaluation, checkpoints or start-up, and the first step of a process is kept apart: it pays for compilation,
cuDNN autotuning and the loader workers' start, which a long run pays once. So `train/img_per_s` in MLflow and
the `throughput.json` a run leaves are the steady-state figure a longer run of the same job gets, comparable across
runs of different length. The loop reads a loss with `.item()` every step, which waits for the GPU, so wall
clock around a step is the step's real time.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Throughput:
    batch: int  # samples per optimizer step, all ranks and accumulated micro-batches together
    first_step_s: float | None = None
    steps: int = 0  # timed steps after the first
    seconds: float = 0.0
    window_steps: int = 0
    window_seconds: float = 0.0

    def add(self, seconds: float) -> None:
        if self.first_step_s is None:
            self.first_step_s = seconds
            return
        self.steps += 1
        self.seconds += seconds
        self.window_steps += 1
        self.window_seconds += seconds

    def window(self) -> dict[str, float]:
        """The steps since the last call as metrics (none before two steps were timed); starts a new window."""
        if not self.window_steps or self.window_seconds <= 0:
            return {}
        step_s = self.window_seconds / self.window_steps
        self.window_steps, self.window_seconds = 0, 0.0
        return {"train/img_per_s": self.batch / step_s, "train/step_s": step_s}

    def summary(self) -> dict:
        step_s = self.seconds / self.steps if self.steps and self.seconds > 0 else None
        kept = {k: v for k, v in asdict(self).items() if not k.startswith("window")}
        return kept | {"step_s": step_s, "img_per_s": self.batch / step_s if step_s else None}

    def describe(self) -> str:
        s = self.summary()
        if s["step_s"] is None:
            return f"throughput: {self.steps + (self.first_step_s is not None)} step(s), too few to time"
        return (f"throughput: {s['img_per_s']:.2f} img/s ({s['step_s']:.3f} s/step at effective batch {self.batch}, "
                f"{self.steps} steps after the first; the first took {self.first_step_s:.1f} s)")  # fmt: skip

    def write(self, path: Path) -> None:
        """`path` as JSON, replaced whole (written aside, then renamed)."""
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.summary(), indent=1) + "\n")
        tmp.replace(path)
