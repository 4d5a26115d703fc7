"""The training recipe: every setting of one training run (`TrainConfig`), one section per consumer.

Below the stages and the entry points: `train`, `tasks/`, the demo and the quality study all read it, and it reads
only the model, data, loss and optimiser sections it is made of.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from restoration.config import ConfigError, field_paths, to_dict
from restoration.data.shards import DataConfig
from restoration.losses.loss_config import LossConfig
from restoration.models.baseline import BaselineConfig
from restoration.models.colorizer import ColorizerConfig
from restoration.models.detector import DetectorConfig
from restoration.models.discriminators import PatchDiscriminatorConfig
from restoration.models.mat import MATConfig
from restoration.optim import OptimConfig
from restoration.weights import MODEL_SECTIONS, InitConfig

Stage = Literal["detector", "inpaint", "colorize", "joint", "gan_baseline"]


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
    # auto: resume from the newest complete checkpoint if there is one; must: refuse to start without one; never:
    # refuse a run directory that already holds a run (`--fresh` moves it aside instead). A finished run is not
    # trained again under any of them: raise run.max_steps to train it further
    resume: Literal["auto", "must", "never"] = "auto"
    mixed_precision: Literal["auto", "no", "bf16"] = "auto"  # auto: bf16 on GPUs that support it, fp32 on CPU
    compile: bool = False
    find_unused_parameters: bool = False
    max_nonfinite_steps: int = 20
    tracking: bool = True
    log_model: bool = True  # log the pipeline as an MLflow pyfunc model at the end (joint and gan_baseline stages)
    # at the end, choose the export's default inference settings on the val split (MAT, or the hole as the input has
    # it, against a classical fill; the colorizer's chroma strength: `inference.choose_settings`) for any pipeline
    # with an inpainter or a colorizer; false keeps the defaults (tile, chroma x1)
    choose_settings: bool = True
    register_model: str = ""  # also register that model under this name
    system_metrics: bool = True  # MLflow `system/*` metrics (CPU, memory, GPU) of the main process's machine
    # multi-rank runs (see restoration/distributed.py)
    dist_timeout_s: float = 600.0  # a rank waiting longer than this for a peer in a collective gives up and exits
    sync_batchnorm: bool = False  # BatchNorm statistics over the global batch instead of each rank's
    # a resume whose run-defining settings (`RESUME_DEFINING`) differ from the run's config.yaml is refused unless
    # this is true; the change is then recorded in config.yaml and MLflow (tag `resume.changed_keys`)
    allow_config_change: bool = False

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "grad_accum", "log_every", "keep_checkpoints", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"run.{name} must be >= 1, got {getattr(self, name)}")
        if self.dist_timeout_s <= 0:
            raise ValueError(f"run.dist_timeout_s must be > 0, got {self.dist_timeout_s}")


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

    def __post_init__(self) -> None:
        if self.loss.chroma_ce > 0 and self.colorizer.head != "bins":
            raise ValueError("loss.chroma_ce > 0 needs colorizer.head=bins (it is the loss of the chroma bins)")


def pipeline_meta(cfg: TrainConfig) -> dict[str, Any]:
    """What a later stage or the predictor needs to rebuild the exported networks (`pipeline.json`)."""
    return {
        "stage": cfg.stage,
        "image_size": cfg.data.image_size,
        **{s: to_dict(getattr(cfg, s)) for s in MODEL_SECTIONS},
    }


# -- checks across sections, made once all overrides are applied (a single section cannot make them) --------------

# the networks each stage builds and trains (restoration/tasks/), rows of `weights.NETWORK_TABLE`
STAGE_NETWORKS: dict[str, tuple[str, ...]] = {
    "inpaint": ("mat_G", "mat_D"),
    "colorize": ("color_G", "color_D"),
    "joint": ("mat_G", "mat_D", "color_G", "color_D"),
    "detector": ("detector",),
    "gan_baseline": ("baseline_G", "baseline_D"),
}
MAT_STAGES = ("inpaint", "joint")  # the stages that build MAT's generator and discriminator (restoration/tasks/)
MIN_IMAGE_SIZE = 32  # the U-Nets reflect-pad to their stride (32); the patch discriminators need about 24 px


def check_recipe(cfg: TrainConfig) -> None:
    """Refuse what the networks would only refuse at the first step, with the key and what to do (`ConfigError`):
    an image size the stage's networks cannot take, a per-rank batch MAT's discriminator cannot group."""
    size = cfg.data.image_size
    if size < MIN_IMAGE_SIZE:
        raise ConfigError(f"data.image_size={size}: too small; the networks need at least {MIN_IMAGE_SIZE} px")
    if cfg.stage in MAT_STAGES:
        _check_mat(cfg)


def mat_sizes(token_res: int, count: int = 6) -> list[int]:
    """The image sizes MAT can be built for: powers of two, twice its transformer's token grid or more."""
    return [2 * token_res * 2**i for i in range(count)]


def _check_mat(cfg: TrainConfig) -> None:
    arch = cfg.mat.arch()
    res, sizes = arch.img_resolution, mat_sizes(arch.token_res)
    allowed = f"a power of two >= {sizes[0]}: {', '.join(map(str, sizes[:4]))}, ..."
    if res < sizes[0] or res & (res - 1):
        raise ConfigError(f"mat.img_resolution={res}: MAT (mat.preset={cfg.mat.preset}) needs {allowed}")
    if cfg.data.image_size != res:
        built = f"mat.img_resolution={res}" if cfg.mat.img_resolution else f"mat.preset={cfg.mat.preset}"
        raise ConfigError(
            f"data.image_size={cfg.data.image_size}: the {cfg.stage} stage's MAT ({built}) takes {res} x {res} px "
            f"images only; set data.image_size={res}, or build MAT for another size with mat.img_resolution=N and "
            f"data.image_size=N, N {allowed}"
        )
    group, batch = arch.mbstd_group_size, cfg.run.batch_size
    if not mbstd_divides(batch, group):
        fits = [n for n in range(1, 8 * group + 1) if mbstd_divides(n, group)][:6]
        raise ConfigError(
            f"run.batch_size={batch}: MAT's discriminator computes its minibatch standard deviation over groups of "
            f"min({group}, N) samples (mbstd_group_size={group} of mat.preset={cfg.mat.preset}), which must divide "
            f"N = {batch} (generator step) and N = {2 * batch} (discriminator step, real and fake together); use "
            f"run.batch_size={' or '.join(map(str, fits))} or another multiple of {group} (run.grad_accum keeps "
            "the effective batch)"
        )


def mbstd_divides(batch: int, group: int) -> bool:
    """MAT's discriminator (`MinibatchStdLayer`, as StyleGAN2-ADA) can group `batch` per rank: min(group, N) divides
    N for the batch of the generator step and twice it in the discriminator step."""
    return all(n % min(group, n) == 0 for n in (batch, 2 * batch))


# -- resume: the settings that define a run --------------------------------------------------------------------------

# A resume may not change these (prefixes of dotted keys) unless `run.allow_config_change=true`: the stage, the batch
# each update sees, what the networks are, what they learn from and how. Everything else may change on resume: the
# run's length and intervals (run.max_steps, run.eval_every, log/checkpoint intervals, run.num_panels, ...), loader
# workers and buffers, where the data lies (data.root: shards move between disks and clusters; the shards themselves
# are checked against their manifest), init.* (read only at a run's start), tracking and distributed timeouts.
RESUME_DEFINING = (
    "stage", "run.batch_size", "run.grad_accum",
    "data.image_size", "data.augment", "data.min_crop_scale", "data.mask",
    *MODEL_SECTIONS, "loss", "optim",
)  # fmt: skip
RESUME_FREE = ("mat.checkpointing", "mat.fused_attention")  # memory and speed only: the same maths


def _defining(key: str) -> bool:
    def under(prefixes: tuple[str, ...]) -> bool:
        return any(key == p or key.startswith(p + ".") for p in prefixes)

    return under(RESUME_DEFINING) and not under(RESUME_FREE)


def _lookup(tree: Any, dotted: str) -> tuple[Any, bool]:
    for part in dotted.split("."):
        if not isinstance(tree, Mapping) or part not in tree:
            return None, False
        tree = tree[part]
    return tree, True


def resume_changes(saved: Mapping[str, Any], cfg: TrainConfig) -> list[tuple[str, Any, Any]]:
    """(key, saved value, new value) for each run-defining setting of `cfg` that differs from `saved`, the run's
    config.yaml as read; a key that file does not have (a setting added since) is not compared."""
    new = to_dict(cfg)
    changes = []
    for key in field_paths(TrainConfig):
        if not _defining(key):
            continue
        old, found = _lookup(saved, key)
        value = _lookup(new, key)[0]
        if found and old != value:
            changes.append((key, old, value))
    return changes


def describe_changes(changes: list[tuple[str, Any, Any]]) -> str:
    """`run.batch_size 2 -> 4, optim.lr 0.0001 -> 0.0002`"""
    text = lambda v: json.dumps(v, default=str)  # noqa: E731
    return ", ".join(f"{key} {text(old)} -> {text(new)}" for key, old, new in changes)
