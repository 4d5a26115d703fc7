"""MLflow tracking for training runs, on the main process only, never fatal.

Why a thin wrapper and not `accelerator.init_trackers`: we need to *resume into the same MLflow run* after a
preemption (the run id travels in the checkpoint), a default store that needs no server (a SQLite file next to the
runs), and a tracking outage must only warn: losing a dashboard is better than losing a 12-hour job.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import posixpath
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
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


def git_output(args: list[str], cwd: Path | None = None) -> str | None:
    """What `git ARGS` prints in the checkout of the code that runs (stripped), or None where git or the checkout is
    missing, or the command fails: a run without git must still train."""
    here = cwd or Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_sha(cwd: Path | None = None) -> str:
    """The commit of the code that runs, or 'unknown' outside a git checkout."""
    return git_output(["rev-parse", "HEAD"], cwd) or "unknown"


PROBE_TIMEOUT_S = 5.0  # how long a start waits for a tracking server before training goes on without it
RETRY_S = 60.0  # how often an unreachable store is tried again (at the next log call)
MAX_BUFFERED_METRICS = 200_000  # kept while the store is unreachable, sent when it answers again


def unreachable(tracking_uri: str, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """Why a tracking server cannot be reached (None when it answers or the store is not a server).

    One HTTP request with a short timeout, instead of MLflow's own client, which retries a dead server with
    back-off for minutes before it gives up."""
    if not tracking_uri.startswith(("http://", "https://")):
        return None
    try:
        urllib.request.urlopen(tracking_uri.rstrip("/") + "/health", timeout=timeout_s).close()
    except urllib.error.HTTPError:
        return None  # it answered (some servers have no /health)
    except (OSError, ValueError) as err:
        return f"{type(err).__name__}: {getattr(err, 'reason', err)}"
    return None


class Tracker:
    """Logs params, metrics, images and artifacts to one MLflow run; a no-op on non-main ranks or when disabled.

    Never fatal and never a long wait. A store that cannot be reached costs one short probe at start (`unreachable`)
    and a warning; training goes on. Params and metrics are then kept in memory and sent when the store answers
    again (tried every `retry_s` seconds, at the next log call, and at `end`); images and artifacts logged while it
    is unreachable are skipped (counted in the final warning). The run id given to `start` (from a checkpoint) is
    kept even while the store is unreachable, so a resumed run always attaches to the same MLflow run.
    """

    def __init__(self, *, enabled: bool, retry_s: float = RETRY_S) -> None:
        self.enabled = enabled
        self.run_id: str | None = None
        self.retry_s = retry_s
        self._client: Any = None
        self._target: dict[str, Any] = {}
        self._offline: str | None = None  # why the store is unreachable; None when connected
        self._next_try = 0.0
        self._params: dict[str, Any] = {}
        self._tags: dict[str, str] = {}
        self._inputs: list[Any] = []  # mlflow.entities.DatasetInput
        self._metrics: list[Any] = []
        self._skipped = 0
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
        """Open (or re-open, when `run_id` is given) the run; returns its id (None when tracking is off, or when the
        store is unreachable and no run existed yet: the run is then created as soon as the store answers).

        Uses an explicit `MlflowClient` rather than the fluent API, whose process-global state (active run,
        cached experiment) would leak between runs started in one process.
        """
        if not self.enabled:
            return None
        if tracking_uri.startswith(("http://", "https://")):  # a dead server must not stall each later call either
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        self._target = {"uri": tracking_uri, "experiment": experiment, "run_name": run_name, "root": artifact_root}
        self.run_id = run_id
        self._connect()
        return self.run_id

    def start_system_metrics(self, *, resume: bool) -> None:
        """MLflow's system metrics of this machine in the run (`system/cpu_utilization_percentage`, `system/
        system_memory_usage_megabytes`, disk, network, and `system/gpu_*` when a GPU and nvidia-ml-py are there),
        sampled by a daemon thread every 10 s (`MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`) until `end`; `resume`
        continues the step count of a resumed run. Not started while the store is unreachable."""
        if not self._online():
            return

        def _start() -> None:
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            monitor = SystemMetricsMonitor(self.run_id, resume_logging=resume, tracking_uri=self._client.tracking_uri)
            monitor.start()
            self._monitor = monitor

        self._call("start system metrics", _start)

    def end(self, status: str = "FINISHED") -> None:
        if self._monitor is not None:  # before the run ends: the monitor's last samples go to a running run
            monitor, self._monitor = self._monitor, None
            try:
                monitor.finish()
            except Exception as err:  # noqa: BLE001 - tracking must never stop training
                log.debug("MLflow: could not stop system metrics: %s", err)
        if not self.enabled or not self._target:
            return
        if self._online(force=True):
            self._call("end the MLflow run", lambda: self._client.set_terminated(self.run_id, status=status))
        if self._offline:
            warnings.warn(
                f"MLflow: {self._target['uri']} still unreachable at the end of the run ({self._offline}): "
                f"{len(self._metrics)} metric values, {len(self._params)} params and {self._skipped} images/"
                f"artifacts were not sent (run id {self.run_id or 'not created'})",
                stacklevel=2,
            )

    # -- logging ---------------------------------------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        """Params are immutable in MLflow: on resume, only keys not yet logged are sent."""
        if not self.enabled:
            return
        self._params.update(params)
        if self._online():
            self._flush()

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Tags may change (params may not): what a resume changed is recorded as tags. Kept like params while the
        store is unreachable."""
        if not self.enabled:
            return
        self._tags.update({k: _param_value(v) for k, v in tags.items()})
        if self._online():
            self._flush()

    def log_inputs(self, inputs: Sequence[Any]) -> None:
        """`mlflow.entities.DatasetInput`s: the data the run used ("Datasets used" in the UI). Kept like tags while the
        store is unreachable; logging one again (a resume) is a no-op in MLflow, which keeps a dataset once per run."""
        if not (self.enabled and inputs):
            return
        self._inputs.extend(inputs)
        if self._online():
            self._flush()

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        if not (self.enabled and metrics):
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._metrics.extend(Metric(k, float(v), now, step) for k, v in metrics.items())
        del self._metrics[:-MAX_BUFFERED_METRICS]
        if self._online():
            self._flush()

    def log_image(self, image_hwc_u8: np.ndarray, key: str, step: int) -> None:
        self._send("log an image", lambda: self._client.log_image(self.run_id, image_hwc_u8, key=key, step=step))

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self._send("log an artifact", lambda: self._client.log_artifact(self.run_id, str(path), artifact_path))

    def log_dir(self, path: Path, artifact_path: str | None = None) -> None:
        self._send("log artifacts", lambda: self._client.log_artifacts(self.run_id, str(path), artifact_path))

    def log_text(self, text: str, artifact_file: str) -> None:
        self._send("log a text artifact", lambda: self._client.log_text(self.run_id, text, artifact_file))

    def log_table(self, data: Mapping[str, Sequence], artifact_file: str, step: int) -> None:
        """A table (column -> values, plus a `step` column) that the UI shows as one (`MlflowClient.log_table`).
        MLflow appends to a table already there: rows of a new step are appended (a resumed run that trains longer
        ends again), rows of a step the table holds are not (the end of a run repeated after a preemption)."""

        def _log() -> None:
            if step in self._table_steps(artifact_file):
                return
            rows = len(next(iter(data.values()), []))
            self._client.log_table(self.run_id, data={**data, "step": [step] * rows}, artifact_file=artifact_file)

        self._send("log a table", _log)

    # -- internals -------------------------------------------------------------------------------------------
    def _table_steps(self, artifact_file: str) -> set[int]:
        """The `step` values of a table logged by `log_table` (none when it is not there). Read from the file, which
        `MlflowClient.log_table` writes as pandas' "split" JSON: `MlflowClient.load_table` finds runs through the
        process-wide (fluent) tracking URI, not this client's."""
        parent = posixpath.dirname(artifact_file) or None
        if artifact_file not in {a.path for a in self._client.list_artifacts(self.run_id, parent)}:
            return set()
        with tempfile.TemporaryDirectory() as tmp:
            logged = json.loads(Path(self._client.download_artifacts(self.run_id, artifact_file, tmp)).read_text())
        if "step" not in logged["columns"]:
            return set()
        column = logged["columns"].index("step")
        return {int(row[column]) for row in logged["data"]}

    def _connect(self) -> bool:
        """Reach the store and open the run; on failure remember why and try again after `retry_s`."""
        reason = unreachable(self._target["uri"])
        if reason is None:
            try:
                self.run_id = self._open_run()
            except Exception as err:  # noqa: BLE001 - any store failure means: go on without it for now
                reason = f"{type(err).__name__}: {err}"
        if reason is not None:
            self._go_offline(reason)
            return False
        if self._offline:
            log.warning("MLflow: %s answers again; sending what was kept", self._target["uri"])
        self._offline = None
        return True

    def _open_run(self) -> str:
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        target = self._target
        self._client = MlflowClient(tracking_uri=target["uri"])
        if self.run_id:
            try:
                self._client.update_run(self.run_id, status="RUNNING")
                return self.run_id
            except MlflowException as err:
                if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
                log.warning("MLflow: run %s is not in %s; starting a new run", self.run_id, target["uri"])
        found = self._client.get_experiment_by_name(target["experiment"])
        if found is None:
            root = target["root"]
            location = (root / target["experiment"]).resolve().as_uri() if root is not None else None
            experiment_id = self._client.create_experiment(target["experiment"], artifact_location=location)
        else:
            experiment_id = found.experiment_id
        return self._client.create_run(experiment_id, run_name=target["run_name"]).info.run_id

    def _go_offline(self, reason: str) -> None:
        self._offline = reason
        self._next_try = time.monotonic() + self.retry_s
        if not self._warned:
            warnings.warn(
                f"MLflow: cannot reach {self._target['uri']} ({reason}); training continues, the store is tried "
                f"again every {self.retry_s:.0f} s and params/metrics are sent when it answers",
                stacklevel=4,
            )
            self._warned = True
        else:
            log.debug("MLflow: %s unreachable: %s", self._target["uri"], reason)

    def _online(self, force: bool = False) -> bool:
        if not (self.enabled and self._target):
            return False
        if self._offline is None and self.run_id is not None:
            return True
        if force or time.monotonic() >= self._next_try:
            return self._connect()
        return False

    def _flush(self) -> None:
        if self._params:
            params, self._params = self._params, {}
            if not self._call("log params", lambda: self._log_params(params)):
                self._params = {**params, **self._params}
        if self._tags and self._offline is None:
            from mlflow.entities import RunTag

            tags, self._tags = self._tags, {}
            batch = [RunTag(k, v) for k, v in tags.items()]
            if not self._call("set tags", lambda: self._client.log_batch(self.run_id, tags=batch)):
                self._tags = {**tags, **self._tags}
        if self._inputs and self._offline is None:
            inputs, self._inputs = self._inputs, []
            if not self._call("log inputs", lambda: self._client.log_inputs(self.run_id, datasets=inputs)):
                self._inputs = [*inputs, *self._inputs]
        while self._metrics and self._offline is None:
            batch = self._metrics[:1000]
            if not self._call("log metrics", lambda batch=batch: self._client.log_batch(self.run_id, metrics=batch)):
                break
            del self._metrics[: len(batch)]

    def _log_params(self, params: Mapping[str, Any]) -> bool:
        from mlflow.entities import Param

        existing = self._client.get_run(self.run_id).data.params
        fresh = [Param(k, _param_value(v)) for k, v in params.items() if k not in existing]
        for i in range(0, len(fresh), 100):  # MLflow caps a batch at 100 params
            self._client.log_batch(self.run_id, params=fresh[i : i + 100])
        return True

    def _send(self, what: str, fn: Callable[[], Any]) -> None:
        if not self.enabled:
            return
        if self._online():
            self._call(what, fn)
        else:
            self._skipped += 1

    def _call(self, what: str, fn: Callable[[], Any]) -> bool:
        """Run one store call; a failure takes the tracker offline (warned once) instead of stopping training."""
        try:
            fn()
            return True
        except Exception as err:  # noqa: BLE001 - tracking must never stop training
            log.debug("MLflow: could not %s: %s", what, err)
            self._go_offline(f"could not {what}: {type(err).__name__}: {err}")
            return False


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
