"""Where a training run came from, as MLflow records it: who started it, which entry point and commit ran, under
which scheduler, and on which data. These fill the MLflow UI's "Created by", "Source", "Git commit", description
and "Datasets used", so that a run found months later can be traced back to code, data and job.

MLflow's fluent API sets the source tags itself, but only for runs it starts; the trainer opens its run with an
explicit `MlflowClient` (see `tracking.Tracker`), so the tags are built here, from the tag names MLflow defines
(`mlflow.utils.mlflow_tags`, `mlflow.entities.SourceType`). The builders are pure functions of what they are given
(`source_tags`, `run_note`, `manifest_dataset`); `run_origin` collects the machine's facts (git, user, host,
SLURM). The dataset is the shard folder described by its manifest (`restoration/data/shard_build.py`): a
`MetaDataset` whose digest is that of the manifest's shard list (every shard's name, split, count and sha256), so
two runs on the same bytes show the same digest wherever the folder lives.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from restoration.data.shards import read_manifest
from restoration.tracking import Tracker, git_output

log = logging.getLogger(__name__)
DEFAULT_ENTRY_POINT = "restoration.train"
TRAINING_CONTEXT = "training"  # `mlflow.data.context` of the train split's input


@dataclass(frozen=True)
class GitInfo:
    """The checkout the code runs from; None where unknown (no git, no checkout, detached head, no remote)."""

    commit: str | None = None
    branch: str | None = None
    repo_url: str | None = None
    dirty: bool | None = None  # tracked files differ from the commit: the commit alone does not describe the code


@dataclass(frozen=True)
class RunOrigin:
    """The facts about a run's origin that come from the machine, gathered once by `run_origin`."""

    user: str
    host: str
    entry_point: str
    git: GitInfo
    env: Mapping[str, str]  # the environment variables the tags read (SLURM_*)


def public_url(url: str) -> str:
    """A remote URL without the user name and password an https remote may carry (`https://user:token@host/x`): the
    tag is visible to everyone who can read the store."""
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url  # also scp-like `git@host:org/repo.git`, whose user is not a secret
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def git_info(cwd: Path | None = None) -> GitInfo:
    """The commit, branch, origin URL and dirtiness of the checkout of the running code (`tracking.git_output`)."""
    commit = git_output(["rev-parse", "HEAD"], cwd)
    if commit is None:
        return GitInfo()
    branch = git_output(["rev-parse", "--abbrev-ref", "HEAD"], cwd)
    url = git_output(["config", "--get", "remote.origin.url"], cwd)
    status = git_output(["status", "--porcelain", "--untracked-files=no"], cwd)
    return GitInfo(
        commit=commit,
        branch=branch if branch and branch != "HEAD" else None,  # HEAD: a detached checkout has no branch
        repo_url=public_url(url) if url else None,
        dirty=None if status is None else bool(status),
    )


def entry_point(main_module: str | None = None, argv0: str | None = None) -> str:
    """What was run: the module of `python -m MODULE` (also under `accelerate launch -m` and `torchrun -m`, which
    start the ranks that way), else the script's file name (`restoration-train`), else `restoration.train`.

    By default read from the running interpreter (`__main__`'s module spec, `sys.argv[0]`)."""
    if main_module is None and argv0 is None:
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        main_module = getattr(spec, "name", None)
        argv0 = sys.argv[0] if sys.argv else None
    if main_module:
        return main_module.removesuffix(".__main__")
    if argv0 and argv0 not in ("-c", "-"):
        return Path(argv0).name
    return DEFAULT_ENTRY_POINT


def current_user() -> str:
    """The login name (`getpass`), or 'unknown' in a container whose uid has no passwd entry."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def run_origin() -> RunOrigin:
    """This process's user, host, entry point, checkout and SLURM variables (a few git calls: main process only)."""
    return RunOrigin(
        user=current_user(),
        host=socket.gethostname(),
        entry_point=entry_point(),
        git=git_info(),
        env={k: v for k, v in os.environ.items() if k.startswith("SLURM_")},
    )


def source_tags(origin: RunOrigin) -> dict[str, str]:
    """MLflow's source tags (user, entry point, `LOCAL` or, under SLURM, `JOB`; git commit, branch and origin where
    known) and this project's extras (`host`: the main process's machine; `slurm.*`: the job, its node count and
    how often it was requeued)."""
    from mlflow.entities import SourceType
    from mlflow.utils import mlflow_tags as names

    job = origin.env.get("SLURM_JOB_ID")
    tags = {
        names.MLFLOW_USER: origin.user,
        names.MLFLOW_SOURCE_NAME: origin.entry_point,
        names.MLFLOW_SOURCE_TYPE: SourceType.to_string(SourceType.JOB if job else SourceType.LOCAL),
        "host": origin.host,
    }
    git = origin.git
    optional = {
        names.MLFLOW_GIT_COMMIT: git.commit,
        names.MLFLOW_GIT_BRANCH: git.branch,
        names.MLFLOW_GIT_REPO_URL: git.repo_url,
        names.MLFLOW_GIT_DIRTY: None if git.dirty is None else str(git.dirty).lower(),
        "slurm.job_id": job,
        "slurm.nodes": origin.env.get("SLURM_JOB_NUM_NODES") if job else None,
        "slurm.restart_count": origin.env.get("SLURM_RESTART_COUNT") if job else None,
    }
    return tags | {k: v for k, v in optional.items() if v}


def run_note(
    *, stage: str, config_file: Path | None, data_root: Path, totals: Mapping[str, int], world_size: int,
    env: Mapping[str, str],
) -> str:  # fmt: skip
    """The run's description (`mlflow.note.content`, Markdown): stage, config file, data and its sample counts,
    processes, and the SLURM job."""
    config = f"`{config_file}`" if config_file is not None else "the defaults"
    counts = " / ".join(f"{totals[s]} {s}" for s in ("train", "val") if s in totals)
    data = f"`{data_root}`" + (f" ({counts} samples)" if counts else "")
    note = f"Trains the **{stage}** stage from {config} on {data}, {world_size} process{'es' * (world_size != 1)}"
    job = env.get("SLURM_JOB_ID")
    if job:
        nodes = env.get("SLURM_JOB_NUM_NODES")
        note += f", SLURM job {job}" + (f" on {nodes} node{'s' * (nodes != '1')}" if nodes else "")
    return note + "."


def run_tags(
    origin: RunOrigin, *, stage: str, config_file: Path | None, data_root: Path, manifest: Mapping[str, Any],
    world_size: int,
) -> dict[str, str]:  # fmt: skip
    """Every tag a training run gets at its start (set again on resume): `source_tags` and the description."""
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE

    note = run_note(
        stage=stage, config_file=config_file, data_root=data_root, totals=manifest.get("totals", {}),
        world_size=world_size, env=origin.env,
    )  # fmt: skip
    return source_tags(origin) | {MLFLOW_RUN_NOTE: note}


# -- the data ---------------------------------------------------------------------------------------------------


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """10 hex digits of the sha256 of the manifest's shard list (name, split, count, sha256 of each shard, in order):
    it changes with any shard's bytes and nothing else (not the folder's location, not the build's arguments)."""
    keys = ("name", "split", "count", "sha256")
    shards = [{k: shard.get(k) for k in keys} for shard in manifest["shards"]]
    return hashlib.sha256(json.dumps(shards, sort_keys=True).encode()).hexdigest()[:10]


def dataset_name(root: Path) -> str:
    """`parent/folder`: `builtin-64/shards`, `contest/shards`; a bare `shards` says little."""
    root = Path(root).resolve()
    return f"{root.parent.name}/{root.name}" if root.parent.name else root.name


def manifest_profile(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Sample and shard counts per split, the build's mode and format: what the UI shows as the dataset's profile."""
    shards = manifest["shards"]
    profile: dict[str, Any] = {f"{k}_samples": v for k, v in manifest.get("totals", {}).items() if k != "rejected"}
    profile |= {f"{s}_shards": sum(1 for x in shards if x.get("split") == s) for s in ("train", "val")}
    if "rejected" in manifest.get("totals", {}):
        profile["rejected_photos"] = manifest["totals"]["rejected"]
    return profile | {k: manifest[k] for k in ("mode", "format_version") if k in manifest}


def manifest_dataset(root: Path, manifest: Mapping[str, Any]) -> Any:
    """The shard folder as an `mlflow.data` dataset: a `MetaDataset` (metadata only, the shards stay where they
    are) whose source is the folder, digest `manifest_digest` and profile `manifest_profile`."""
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource

    class ShardDataset(MetaDataset):  # here, not at module level: MLflow is imported only when a run is tracked
        """A `MetaDataset` with a profile (MLflow's has none)."""

        @property
        def profile(self) -> dict[str, Any]:
            return manifest_profile(manifest)

        def to_dict(self) -> dict[str, str]:
            return super().to_dict() | {"profile": json.dumps(self.profile)}

    source = LocalArtifactDatasetSource(Path(root).resolve().as_uri())
    return ShardDataset(source, name=dataset_name(root), digest=manifest_digest(manifest))


def training_input(root: Path, manifest: Mapping[str, Any]) -> Any:
    """The shard folder as the run's input in the training context (`mlflow.entities.DatasetInput`). One input:
    MLflow keeps a dataset once per run, so the same folder cannot be logged again for validation."""
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    dataset = manifest_dataset(root, manifest)._to_mlflow_entity()
    return DatasetInput(dataset, tags=[InputTag(MLFLOW_DATASET_CONTEXT, TRAINING_CONTEXT)])


def log_run_origin(tracker: Tracker, *, stage: str, config_file: Path | None, data_root: Path, world_size: int) -> None:
    """Set the run's tags and description and log its data input (main process; again on resume, which changes
    nothing but a description edited in the UI). Like all tracking, never fatal: an unreadable manifest only
    leaves the sample counts and the dataset out."""
    if not tracker.enabled:
        return
    try:
        manifest: Mapping[str, Any] | None = read_manifest(data_root)
    except (OSError, ValueError) as err:
        log.warning("MLflow: the run's dataset is not logged: %s", err)
        manifest = None
    tags = run_tags(run_origin(), stage=stage, config_file=config_file, data_root=data_root, manifest=manifest or {},
                    world_size=world_size)  # fmt: skip
    tracker.set_tags(tags)
    if manifest is None:
        return
    try:
        tracker.log_inputs([training_input(data_root, manifest)])
    except Exception as err:  # noqa: BLE001 - a manifest of an unexpected shape must not stop training
        log.warning("MLflow: the run's dataset is not logged: %s: %s", type(err).__name__, err)
