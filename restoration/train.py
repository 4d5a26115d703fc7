"""The training entry point: ``python -m restoration.train CONFIG.yaml [a.b.c=value ...]``.

Works the same under ``accelerate launch -m restoration.train`` and ``torchrun -m restoration.train``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from restoration.config import ConfigError, dump_yaml, load_config, save_yaml

Stage = Literal["detector", "inpaint", "colorize", "joint", "gan_baseline"]


@dataclass
class OptimConfig:
    """Optimiser and schedule shared by the generators; discriminators use `d_lr_scale` times the lr."""

    lr: float = 2e-4
    betas: tuple[float, float] = (0.0, 0.99)
    weight_decay: float = 0.0
    d_lr_scale: float = 1.0
    grad_clip: float = 10.0
    warmup_steps: int = 0
    schedule: Literal["constant", "cosine"] = "constant"

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


@dataclass
class RunConfig:
    """Where a run writes, how long it trains and how it is named in MLflow."""

    name: str = "demo"
    experiment: str = "restoration"
    output_dir: Path = Path("runs")
    seed: int = 0
    max_steps: int = 100
    batch_size: int = 4
    grad_accum: int = 1
    log_every: int = 10


@dataclass
class TrainConfig:
    """Everything one training run needs; each section is owned by the code it configures."""

    stage: Stage = "joint"
    run: RunConfig = field(default_factory=RunConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)


def parse_args(argv: list[str] | None = None) -> tuple[Path | None, list[str], argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="restoration-train",
        description="Train a stage of the restoration pipeline. Positional arguments: an optional CONFIG.yaml "
        "followed by dotted overrides such as optim.lr=1e-4 run.max_steps=500.",
    )
    parser.add_argument("args", nargs="*", metavar="CONFIG.yaml | key=value")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    ns = parser.parse_args(argv)
    configs = [a for a in ns.args if "=" not in a]
    overrides = [a for a in ns.args if "=" in a]
    if len(configs) > 1:
        parser.error(f"give at most one config file, got {configs}")
    return (Path(configs[0]) if configs else None), overrides, ns


def main(argv: list[str] | None = None) -> int:
    config_path, overrides, ns = parse_args(argv)
    try:
        cfg = load_config(TrainConfig, config_path, overrides)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
    if ns.print_config:
        print(dump_yaml(cfg), end="")
        return 0
    run_dir = cfg.run.output_dir / cfg.run.name
    save_yaml(cfg, run_dir / "config.yaml")
    print(f"resolved config written to {run_dir / 'config.yaml'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
