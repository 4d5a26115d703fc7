"""MLflow tracking for training runs, on the main process only, never fatal.

Why a thin wrapper and not `accelerator.init_trackers`: we need to *resume into the same MLflow run* after a
preemption (the run id travels in the checkpoint), a default store that needs no server (a SQLite file next to the
runs), and a tracking outage must only warn: losing a dashboard is better than losing a 12-hour job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from restoration.weights import ModelSourceError

log = logging.getLogger(__name__)


def default_tracking_uri(output_dir: Path) -> str:
    """`MLFLOW_TRACKING_URI` if set, else a SQLite file in the runs' parent directory (no server needed)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{(Path(output_dir).resolve() / 'mlflow.db').as_posix()}"


@contextlib.contextmanager
def fluent_mlflow(tracking_uri: str | None) -> Iterator[None]:
    """Point MLflow's process-wide (fluent) API at `tracking_uri` for a block, then put everything back.

    `mlflow.set_tracking_uri` also exports `MLFLOW_TRACKING_URI`, which `default_tracking_uri` honours: without the
    restore, one run's store would silently become the default of every later run in the process.
    """
    import mlflow

    saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    saved_uris = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    try:
        if tracking_uri:
            mlflow.set_tracking_uri(tracking_uri)
            mlflow.set_registry_uri(tracking_uri)
        yield
    finally:
        mlflow.set_tracking_uri(saved_uris[0])
        mlflow.set_registry_uri(saved_uris[1])
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


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
        self._client: Any = None
        self._monitor: Any = None
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
        """Open (or re-open, when `run_id` is given) the run; returns its id, or None when tracking is off.

        Uses an explicit `MlflowClient` rather than the fluent API, whose process-global state (active run,
        cached experiment) would leak between runs started in one process.
        """
        if not self.enabled:
            return None

        def _start() -> str:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=tracking_uri)
            found = self._client.get_experiment_by_name(experiment)
            if found is None:
                location = (artifact_root / experiment).resolve().as_uri() if artifact_root is not None else None
                experiment_id = self._client.create_experiment(experiment, artifact_location=location)
            else:
                experiment_id = found.experiment_id
            if run_id:
                self._client.update_run(run_id, status="RUNNING")
                return run_id
            return self._client.create_run(experiment_id, run_name=run_name).info.run_id

        self.run_id = self._guard("start the MLflow run", _start)
        if self.run_id is None:
            self.enabled = False
        return self.run_id

    def start_system_metrics(self, *, resume: bool) -> None:
        """MLflow's system metrics of this machine in the run (`system/cpu_utilization_percentage`, `system/
        system_memory_usage_megabytes`, disk, network, and `system/gpu_*` when a GPU and nvidia-ml-py are there),
        sampled by a daemon thread every 10 s (`MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`) until `end`; `resume`
        continues the step count of a resumed run."""
        if not self._active():
            return

        def _start() -> Any:
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            monitor = SystemMetricsMonitor(self.run_id, resume_logging=resume, tracking_uri=self._client.tracking_uri)
            monitor.start()
            return monitor

        self._monitor = self._guard("start system metrics", _start)

    def end(self, status: str = "FINISHED") -> None:
        if self._monitor is not None:  # before the run ends: the monitor's last samples go to a running run
            self._guard("stop system metrics", self._monitor.finish)
            self._monitor = None
        if self._active():
            self._guard("end the MLflow run", lambda: self._client.set_terminated(self.run_id, status=status))

    # -- logging ---------------------------------------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        """Params are immutable in MLflow: on resume, only keys not yet logged are sent."""
        if not self._active():
            return

        def _log() -> None:
            from mlflow.entities import Param

            existing = self._client.get_run(self.run_id).data.params
            fresh = [Param(k, _param_value(v)) for k, v in params.items() if k not in existing]
            for i in range(0, len(fresh), 100):  # MLflow caps a batch at 100 params
                self._client.log_batch(self.run_id, params=fresh[i : i + 100])

        self._guard("log params", _log)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        if not (self._active() and metrics):
            return

        def _log() -> None:
            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
            self._client.log_batch(self.run_id, metrics=batch)

        self._guard("log metrics", _log)

    def log_image(self, image_hwc_u8: np.ndarray, key: str, step: int) -> None:
        if self._active():
            self._guard("log an image", lambda: self._client.log_image(self.run_id, image_hwc_u8, key=key, step=step))

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if self._active():
            self._guard("log an artifact", lambda: self._client.log_artifact(self.run_id, str(path), artifact_path))

    def log_dir(self, path: Path, artifact_path: str | None = None) -> None:
        if self._active():
            self._guard("log artifacts", lambda: self._client.log_artifacts(self.run_id, str(path), artifact_path))

    def log_text(self, text: str, artifact_file: str) -> None:
        if self._active():
            self._guard("log a text artifact", lambda: self._client.log_text(self.run_id, text, artifact_file))

    # -- internals -------------------------------------------------------------------------------------------
    def _active(self) -> bool:
        return self.enabled and self.run_id is not None

    def _guard(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as err:  # noqa: BLE001 - tracking must never stop training
            if not self._warned:
                warnings.warn(
                    f"MLflow: could not {what} ({type(err).__name__}: {err}); training continues", stacklevel=3
                )
                self._warned = True
            else:
                log.debug("MLflow: could not %s: %s", what, err)
            return None


def _param_value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


def fetch_mlflow_model(uri: str, dst: Path, tracking_uri: str | None = None) -> Path:
    """Download an MLflow model (`runs:/<id>/model`, `models:/<name>/<version>`, `models:/m-<id>`) to `dst`."""
    import mlflow

    try:
        with fluent_mlflow(tracking_uri):
            local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst))
    except Exception as err:  # noqa: BLE001 - mlflow raises many types; the user needs the URI and the cause
        raise ModelSourceError(f"{uri}: cannot fetch the MLflow model ({type(err).__name__}: {err})") from err
    return Path(local)
