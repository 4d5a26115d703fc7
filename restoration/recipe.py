"""The training recipe: every setting of one training run (`TrainConfig`), one section per consumer.

Below the stages and the entry points: `train`, `tasks/`, the demo and the quality study all read it, and it reads
only the model, data, loss and optimiser sections it is made of.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from restoration.config import to_dict
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
    resume: Literal["auto", "never"] = "auto"
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
