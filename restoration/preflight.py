"""What a training run needs from disk, checked before anything is created: the shards, the weights files, the runs
it starts from.

Why before: a run that fails on its data after the MLflow run and the run directory exist leaves a run stuck in
RUNNING and a directory that the next try resumes into. Every problem is found in one pass and said in one line
naming the config key, the file and what to do, so a user fixes them all at once. Reading a manifest and a few
`stat`s is cheap; hashing the shards (`data.verify_shards`) stays in the trainer, shared by the ranks.
"""

from __future__ import annotations

from pathlib import Path

from restoration.carry import CarryError, read_source
from restoration.data.shards import read_manifest
from restoration.recipe import MAT_STAGES, STAGE_NETWORKS, TrainConfig
from restoration.weights import ModelSourceError, network_spec, resolve_source

BUILTIN = Path("builtin")
WEIGHT_FIELDS = ("weights", "pretrained")  # the fields of a model section that name a file to load


def data_problems(cfg: TrainConfig) -> list[str]:
    """`data.root`: a folder with a readable `manifest.json` listing non-empty train and val shards that exist."""
    root = cfg.data.root
    if root == BUILTIN:
        return []
    build = f"build shards with `restoration-shards photos --root PHOTOS --out {root}` or use data.root=builtin"
    if not root.exists():
        return [f"data.root={root}: no such directory; {build}"]
    if not root.is_dir():
        return [f"data.root={root}: a file, not a shard folder; {build}"]
    manifest = root / "manifest.json"
    if not manifest.is_file():
        return [f"data.root={root}: no manifest.json, so not a finished shard folder (an interrupted build writes "
                f"none); {build}"]  # fmt: skip
    try:
        shards = read_manifest(root)["shards"]
        listed = [(s["split"], s["name"], int(s["count"])) for s in shards]
    except (OSError, ValueError, KeyError, TypeError) as err:
        return [f"{manifest}: unreadable manifest ({type(err).__name__}: {err}); rebuild the shards"]
    problems = []
    for split in ("train", "val"):
        if not any(s == split and count > 0 for s, _, count in listed):
            problems.append(f"{manifest}: no non-empty {split} shards; rebuild the shards with a {split} split")
    missing = [name for _, name, count in listed if count > 0 and not (root / name).is_file()]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        problems.append(f"data.root={root}: {len(missing)} shard(s) its manifest lists are missing "
                        f"({', '.join(missing[:3])}{more}); rebuild the shards or restore the files")  # fmt: skip
    return problems


def weight_file_keys(cfg: TrainConfig) -> dict[str, Path]:
    """The weights files this run's stage will read: `<section>.weights|pretrained` of the networks it builds, and
    the perceptual loss's VGG file when that loss is on. Keys as the user writes them."""
    files: dict[str, Path] = {}
    for name in STAGE_NETWORKS[cfg.stage]:
        section = network_spec(name).section
        for field in WEIGHT_FIELDS:
            value = getattr(getattr(cfg, section), field, None)
            if value is not None:
                files[f"{section}.{field}"] = Path(value)
    if cfg.stage in MAT_STAGES and cfg.loss.mat_perceptual > 0 and cfg.loss.perceptual_weights is not None:
        files["loss.perceptual_weights"] = cfg.loss.perceptual_weights
    return files


def weights_problems(cfg: TrainConfig) -> list[str]:
    problems = []
    for key, path in weight_file_keys(cfg).items():
        if not path.exists():
            problems.append(f"{key}={path}: no such file (weights are never downloaded: copy the file there, see the "
                            "README's 512 px section for where each comes from, or unset the key)")  # fmt: skip
        elif not path.is_file():
            problems.append(f"{key}={path}: a directory, not a weights file")
    return problems


def init_problems(cfg: TrainConfig) -> list[str]:
    """Each `init.from_weights` entry is a directory a stage can start from (an export, a run, a checkpoint); with
    `init.carry_state`, a checkpoint that records its networks' training state."""
    problems = []
    for path in cfg.init.from_weights:
        try:
            resolve_source(path)
        except ModelSourceError as err:
            problems.append(f"init.from_weights: {err}")
    if cfg.init.carry_state and not cfg.init.from_weights:
        problems.append("init.carry_state: true needs init.from_weights (the checkpoints to continue from)")
    for path in cfg.init.from_weights if cfg.init.carry_state else []:
        try:
            read_source(path)
        except CarryError as err:
            problems.append(str(err))
    return problems


def preflight(cfg: TrainConfig) -> list[str]:
    """Every problem found, one line each; empty when the run can start."""
    return data_problems(cfg) + weights_problems(cfg) + init_problems(cfg)
