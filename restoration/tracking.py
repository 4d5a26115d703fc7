"""MLflow tracking for training runs, on the main process only, never fatal.

Why a thin wrapper and not `accelerator.init_trackers`: we need to *resume into the same MLflow run* after a
preemption (the run id travels in the checkpoint), a default store that needs no server (a SQLite file next to the
runs), and a tracking outage must only warn: losing a dashboard is better than losing a 12-hour job.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def default_tracking_uri(output_dir: Path) -> str:
    """`MLFLOW_TRACKING_URI` if set, else a SQLite file in the runs' parent directory (no server needed)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{(Path(output_dir).resolve() / 'mlflow.db').as_posix()}"


def git_sha(cwd: Path | None = None) -> str:
    """The commit of the code that runs, or 'unknown' outside a git checkout."""
    here = cwd or Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class Tracker:
    """Logs params, metrics, images and artifacts to one MLflow run; a no-op on non-main ranks or when disabled.

    Every call is guarded: the first failure is reported with a warning, later ones are logged at debug level, and
    training continues.
    """

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.run_id: str | None = None
        self._mlflow: Any = None
        self._warned = False

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(
        self,
        *,
        tracking_uri: str,
        experiment: str,
        run_name: str,
        run_id: str | None = None,
        artifact_root: Path | None = None,
    ) -> str | None:
        """Open (or re-open, when `run_id` is given) the run; returns its id, or None when tracking is off."""
        if not self.enabled:
            return None

        def _start() -> str:
            import mlflow

            self._mlflow = mlflow
            mlflow.set_tracking_uri(tracking_uri)
            if mlflow.get_experiment_by_name(experiment) is None:
                location = (artifact_root / experiment).resolve().as_uri() if artifact_root is not None else None
                mlflow.create_experiment(experiment, artifact_location=location)
            mlflow.set_experiment(experiment)
            run = mlflow.start_run(run_id=run_id) if run_id else mlflow.start_run(run_name=run_name)
            return run.info.run_id

        self.run_id = self._guard("start the MLflow run", _start)
        if self.run_id is None:
            self.enabled = False
        return self.run_id

    def end(self, status: str = "FINISHED") -> None:
        if self.enabled and self._mlflow is not None:
            self._guard("end the MLflow run", lambda: self._mlflow.end_run(status=status))

    # -- logging ---------------------------------------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        """Params are immutable in MLflow: on resume, only keys not yet logged are sent."""
        if not self._active():
            return

        def _log() -> None:
            existing = self._mlflow.get_run(self.run_id).data.params
            fresh = {k: _param_value(v) for k, v in params.items() if k not in existing}
            items = list(fresh.items())
            for i in range(0, len(items), 100):  # MLflow caps a batch at 100 params
                self._mlflow.log_params(dict(items[i : i + 100]))

        self._guard("log params", _log)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        if self._active() and metrics:
            self._guard("log metrics", lambda: self._mlflow.log_metrics(dict(metrics), step=step))

    def log_image(self, image_hwc_u8: np.ndarray, key: str, step: int) -> None:
        if self._active():
            self._guard("log an image", lambda: self._mlflow.log_image(image_hwc_u8, key=key, step=step))

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if self._active():
            self._guard("log an artifact", lambda: self._mlflow.log_artifact(str(path), artifact_path))

    def log_text(self, text: str, artifact_file: str) -> None:
        if self._active():
            self._guard("log a text artifact", lambda: self._mlflow.log_text(text, artifact_file))

    def log_dir(self, path: Path, artifact_path: str | None = None) -> None:
        if self._active():
            self._guard("log artifacts", lambda: self._mlflow.log_artifacts(str(path), artifact_path))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        if self._active():
            self._guard("set tags", lambda: self._mlflow.set_tags(dict(tags)))

    # -- internals -------------------------------------------------------------------------------------------
    def _active(self) -> bool:
        return self.enabled and self.run_id is not None

    def _guard(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as err:  # noqa: BLE001 - tracking must never stop training
            if not self._warned:
                warnings.warn(f"MLflow: could not {what} ({type(err).__name__}: {err}); training continues", stacklevel=3)
                self._warned = True
            else:
                log.debug("MLflow: could not %s: %s", what, err)
            return None


def _param_value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


def temp_dir() -> tempfile.TemporaryDirectory:
    """A scratch directory for files that are logged as artifacts and then thrown away."""
    return tempfile.TemporaryDirectory(prefix="restoration-mlflow-")
