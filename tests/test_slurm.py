"""`launch/slurm/train.sbatch` on a real two-node SLURM cluster (`launch/slurm/local_cluster.sh`, both nodes on this
machine): a plain 2-node run, preemption through SLURM (USR1 -> save -> exit 75 -> requeue -> resume), and a node's
trainer killed mid-run (the survivor stops within run.dist_timeout_s; the rerun resumes).

Needs root and Debian's slurm-wlm + munge (`.ci/run` installs them). Without them the tests are skipped with the
reason; with RESTORATION_REQUIRE_SLURM=1 (CI) they fail instead, so CI can never pass them silently.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from restoration.preemption import REQUEUE_EXIT_CODE

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "launch" / "slurm" / "local_cluster.sh"
SBATCH = ROOT / "launch" / "slurm" / "train.sbatch"
TINY = "configs/tiny.yaml"

pytestmark = pytest.mark.slurm


def slurm_missing() -> str | None:
    """Why a local SLURM cluster cannot run here, or None."""
    missing = [tool for tool in ("munged", "slurmctld", "slurmd", "sbatch", "scontrol") if shutil.which(tool) is None]
    if missing:
        return f"SLURM not installed ({', '.join(missing)} missing): apt-get install -y slurm-wlm munge"
    if os.geteuid() != 0:
        return "a local SLURM cluster needs root (slurmd starts jobs as their user)"
    return None


def skip_or_fail(reason: str) -> None:
    if os.environ.get("RESTORATION_REQUIRE_SLURM") == "1":
        pytest.fail(f"{reason}, but RESTORATION_REQUIRE_SLURM=1")
    pytest.skip(reason)


class Cluster:
    """A running local cluster and the environment its clients and jobs need."""

    def __init__(self, conf: Path, work: Path) -> None:
        self.conf, self.work = conf, work
        bin_dir = str(Path(sys.executable).parent)
        self.env = {
            **os.environ, "SLURM_CONF": str(conf), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
            "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "1",
        }  # fmt: skip
        self.jobs: list[str] = []

    def run(self, *cmd: str, timeout: float = 30) -> str:
        out = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout, check=True)
        return out.stdout

    def sbatch(self, *args: str, output: Path) -> str:
        """Submit train.sbatch from the repository root (as the docs say); returns the job id."""
        job = self.run("sbatch", "--parsable", "--nodes", "2", f"--output={output}", str(SBATCH), *args).strip()
        self.jobs.append(job)
        return job

    def job(self, job: str) -> dict[str, str]:
        """`scontrol show job` as a dict (JobState, Restarts, ExitCode, Reason, ...)."""
        text = self.run("scontrol", "show", "job", "-o", job)
        return dict(re.findall(r"(\w+)=(\S*)", text))

    def wait_done(self, job: str, timeout: float) -> dict[str, str]:
        """Wait until `job` has ended. A requeued job waits SLURM's ~2 min (the job credential's lifetime) before it
        may start again; the test shortens that wait with `scontrol update StartTime=now+5`, not `now`: each slurmd
        refuses a job whose new credential was issued in the same second as the old run's was revoked ("Job
        credential revoked", "already killed, do not launch batch job"), and the job ends FAILED with Restarts=1
        and no second start (seen in CI, and locally whenever the requeue and the update shared a second). An end
        state counts once it holds for a few seconds."""
        deadline = time.time() + timeout
        ended = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")
        lifted = set()
        while time.time() < deadline:
            info = self.job(job)
            if info["JobState"] in ended:
                time.sleep(5)
                again = self.job(job)
                if again["JobState"] == info["JobState"] and again.get("Restarts") == info.get("Restarts"):
                    return again
                continue
            restart = info.get("Restarts")
            if info["JobState"] == "PENDING" and info.get("Reason") == "BeginTime" and restart not in lifted:
                self.run("scontrol", "update", f"JobId={job}", "StartTime=now+5")
                lifted.add(restart)
            time.sleep(1)
        raise AssertionError(f"job {job} still {self.job(job)['JobState']} after {timeout} s")

    def logs(self, job: str, lines: int = 40) -> str:
        """The daemons' log lines about `job` (the last `lines` of each): why SLURM ended or requeued it."""
        out = []
        for log in sorted(self.conf.parent.glob("slurm*.log")):
            hits = [line for line in read(log).splitlines() if f"JobId={job}" in line or f"[{job}." in line
                    or f"job {job}" in line.lower()]  # fmt: skip
            out.append(f"--- {log.name}\n" + "\n".join(hits[-lines:]))
        return "\n".join(out)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    """Two SLURM nodes on this machine for the module; always torn down (jobs cancelled, daemons stopped)."""
    reason = slurm_missing()
    if reason:
        skip_or_fail(reason)
    work = tmp_path_factory.mktemp("slurm")
    state_dir = work / "cluster"
    env = {**os.environ, "PATH": os.environ.get("PATH", "")}
    up = subprocess.run([str(CLUSTER), "up", "--dir", str(state_dir)], env=env, capture_output=True, text=True,
                        timeout=120)  # fmt: skip
    try:
        if up.returncode != 0:
            skip_or_fail(f"the local SLURM cluster did not come up: {up.stderr.strip()[-2000:]}")
        yield Cluster(state_dir / "slurm.conf", work)
    finally:
        subprocess.run([str(CLUSTER), "down", "--dir", str(state_dir)], env=env, capture_output=True, timeout=120)


@pytest.fixture
def jobs_cancelled(cluster) -> Iterator[None]:
    """Whatever happens in the test, none of its jobs outlives it."""
    yield
    for job in cluster.jobs:
        subprocess.run(["scancel", job], env=cluster.env, capture_output=True, timeout=30)
    cluster.jobs.clear()


def train_args(cluster: Cluster, shards: Path, name: str, *extra: str) -> list[str]:
    return [TINY, f"run.output_dir={cluster.work / 'runs'}", f"data.root={shards}", f"run.name={name}",
            "run.log_model=false", *extra]  # fmt: skip


def the_run(cluster: Cluster, name: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{cluster.work / 'runs' / 'mlflow.db'}")
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], filter_string=f"tags.mlflow.runName = '{name}'"
    )
    assert len(runs) == 1, f"expected one MLflow run named {name}, got {len(runs)}"
    return client, runs[0]


def assert_replicas_agree(run_dir: Path) -> None:
    report = json.loads((run_dir / "replicas.json").read_text())
    assert report["num_processes"] == 2
    assert report["distributed_type"] == "MULTI_CPU"
    assert report["in_sync"] is True
    assert report["checksums"][0] == report["checksums"][1]


def wait_for(condition: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}:\n" + tail(log)
        time.sleep(0.2)


def read(log: Path) -> str:
    """A job's output: both nodes write into it, so a progress bar may be cut inside a UTF-8 character."""
    return log.read_text(errors="replace")


def tail(log: Path, chars: int = 4000) -> str:
    return read(log)[-chars:] if log.exists() else f"(no {log})"


def running(pid: int) -> bool:
    """Whether `pid` exists and has not exited (a zombie waiting for its launcher to reap it has)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def trainer_pid(cluster: Cluster, job: str, node: int) -> int | None:
    """The training process (not the launcher) that job `job` of `cluster` runs on its node `node`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = dict(
                line.split(b"=", 1) for line in (entry / "environ").read_bytes().split(b"\0") if b"=" in line
            )
        except OSError:
            continue
        if (environ.get(b"SLURM_CONF") == str(cluster.conf).encode() and environ.get(b"SLURM_JOB_ID") == job.encode()
                and environ.get(b"SLURM_NODEID") == str(node).encode() and b"LOCAL_RANK" in environ
                and b"restoration.train" in cmdline):  # fmt: skip
            return int(entry.name)
    return None


@pytest.mark.slow
def test_sbatch_on_two_nodes_trains_one_process_per_node_into_one_mlflow_run(cluster, tiny_shards, jobs_cancelled):
    log = cluster.work / "plain.log"
    job = cluster.sbatch(*train_args(cluster, tiny_shards, "plain"), output=log)
    info = cluster.wait_done(job, timeout=400)
    assert info["JobState"] == "COMPLETED", f"{info}\n{tail(log)}\n{cluster.logs(job)}"
    text = read(log)
    assert "2 nodes x 1 processes" in text
    for node in ("n1", "n2"):  # one task on each node
        assert f"launch task StepId={job}.0" in (cluster.conf.parent / f"slurmd-{node}.log").read_text()
    assert_replicas_agree(cluster.work / "runs" / "plain")
    client, run = the_run(cluster, "plain")
    assert run.info.status == "FINISHED"
    assert run.data.params["world_size"] == "2"
    assert max(m.step for m in client.get_metric_history(run.info.run_id, "train/g_loss")) == 3
    assert "system/cpu_utilization_percentage" in run.data.metrics
    assert "system/system_memory_usage_megabytes" in run.data.metrics


@pytest.mark.slow
def test_usr1_through_slurm_saves_on_every_rank_requeues_and_resumes_to_the_exact_step(
    cluster, tiny_shards, jobs_cancelled
):
    steps = 8  # USR1 arrives at step 1-2: room to spare, and each step costs ~3 s on 2 nodes
    log = cluster.work / "usr1.log"
    args = train_args(cluster, tiny_shards, "usr1", f"run.max_steps={steps}", "run.checkpoint_every=1000",
                      "run.eval_every=0")  # fmt: skip
    job = cluster.sbatch(*args, output=log)
    # the global main process prints `ranks=` once past the collective `prepare`, which no rank enters before its
    # USR1 handler is installed (in `main`): so both nodes' handlers are in place
    wait_for(lambda: log.exists() and "ranks=2" in read(log), 400, "both nodes training", log)
    cluster.run("scancel", "--batch", "--signal=USR1", job)  # what --signal=B:USR1@180 does before the time limit
    info = cluster.wait_done(job, timeout=600)
    assert info["JobState"] == "COMPLETED", f"{info}\n{tail(log)}\n{cluster.logs(job)}"
    assert info["Restarts"] == "1", tail(log)
    text = read(log)
    assert "USR1: asking the trainers" in text
    assert text.count(f"exitcode  : {REQUEUE_EXIT_CODE}") == 2, tail(log)  # every rank (one per node) exited 75
    saved = int(re.search(r"checkpoint saved at step (\d+): requeueing", text).group(1))
    assert 1 <= saved < steps
    assert f"resuming from {cluster.work / 'runs' / 'usr1' / 'checkpoints'}/step-{saved:08d} at step {saved}" in text
    assert_replicas_agree(cluster.work / "runs" / "usr1")
    client, run = the_run(cluster, "usr1")  # one MLflow run across the requeue
    assert run.info.status == "FINISHED"
    history = sorted(m.step for m in client.get_metric_history(run.info.run_id, "train/g_loss"))
    assert history == list(range(1, steps + 1)), "the history has a gap or a repeated step"


@pytest.mark.slow
def test_a_killed_node_stops_the_survivor_within_the_timeout_and_the_rerun_resumes(
    cluster, tiny_shards, jobs_cancelled
):
    timeout_s = 20
    log = cluster.work / "lost.log"
    args = train_args(cluster, tiny_shards, "lost", "run.max_steps=8", "run.checkpoint_every=2", "run.eval_every=0",
                      f"run.dist_timeout_s={timeout_s}")  # fmt: skip
    job = cluster.sbatch(*args, output=log)
    checkpoints = cluster.work / "runs" / "lost" / "checkpoints"
    wait_for(lambda: (checkpoints / "step-00000002").is_dir(), 400, "the first checkpoint", log)
    victim, survivor = trainer_pid(cluster, job, 1), trainer_pid(cluster, job, 0)
    assert victim, tail(log)
    assert survivor, tail(log)
    killed_at = time.time()
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: not running(survivor), timeout_s + 30, "the survivor to exit", log)
    detected_s = time.time() - killed_at
    info = cluster.wait_done(job, timeout=120)
    print(f"survivor exited {detected_s:.1f} s after its peer was killed; job {info['JobState']}")
    assert info["JobState"] == "FAILED", tail(log)
    assert "rank 0 of 2: lost a peer rank" in read(log), tail(log)
    last = max(int(p.name.split("-")[1]) for p in checkpoints.glob("step-*") if not p.name.endswith(".tmp"))
    _, run_before = the_run(cluster, "lost")

    log2 = cluster.work / "lost-rerun.log"
    rerun = cluster.sbatch(*args, output=log2)  # the same command
    assert cluster.wait_done(rerun, timeout=400)["JobState"] == "COMPLETED", f"{tail(log2)}\n{cluster.logs(rerun)}"
    assert f"resuming from {checkpoints}/step-{last:08d} at step {last}" in read(log2)
    assert json.loads((checkpoints / "step-00000008" / "trainer.json").read_text())["step"] == 8
    client, run_after = the_run(cluster, "lost")
    assert run_after.info.run_id == run_before.info.run_id
    assert max(m.step for m in client.get_metric_history(run_after.info.run_id, "train/g_loss")) == 8
