"""The training entry point: ``python -m restoration.train CONFIG.yaml [a.b.c=value ...]`` (``restoration-train``).

Works the same under ``accelerate launch -m restoration.train`` and ``torchrun -m restoration.train``. This module
only reads the command line, with nothing heavier than argparse imported, so that ``--help`` and ``--version``
answer at once (torch alone takes ~2 s to import); the trainer (`restoration.trainer`) is imported when there is
a config to check or a run to train.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from restoration.cli_help import add_version, prog_name


def parse_args(argv: list[str] | None = None) -> tuple[Path | None, list[str], argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog=prog_name("restoration-train", "restoration.train"),
        description="Train a stage of the restoration pipeline: an optional CONFIG.yaml, then dotted overrides "
        "such as optim.lr=1e-4 run.max_steps=500 (every key: --help-config). The data, weights files and "
        "init.from_weights are checked before anything is created; a problem exits with 2.",
        epilog="exit codes: 0 done (or nothing left to do), 1 failed, 2 bad config/data/weights (nothing created), "
        "75 stopped by a signal after saving (requeue to resume)",
    )
    parser.add_argument("args", nargs="*", metavar="CONFIG.yaml | key=value")
    add_version(parser)
    parser.add_argument("--check", "--dry-run", dest="check", action="store_true",
                        help="check the config, data, weights and run directory, print the resolved config and what "
                        "a run would do (start, resume, nothing), and exit: 0 ready, 2 not")  # fmt: skip
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit (2 when "
                        "the checks of --check find a problem)")  # fmt: skip
    parser.add_argument("--help-config", action="store_true", help="list every config key with its type, default "
                        "and meaning, and exit")  # fmt: skip
    parser.add_argument("--print-run-dir", action="store_true", help="print the run directory and exit (SLURM)")
    parser.add_argument("--resume", choices=("auto", "must", "never"), help="the same as run.resume=...: auto "
                        "(default) resumes from the newest checkpoint if any, must refuses to start without one, "
                        "never refuses a run directory that holds a run")  # fmt: skip
    parser.add_argument("--fresh", action="store_true", help="start over: move an existing run directory aside "
                        "(to NAME.replaced-TIME; nothing is deleted) and train from step 0")  # fmt: skip
    ns = parser.parse_intermixed_args(argv)  # options may come after the overrides
    configs = [a for a in ns.args if "=" not in a]
    overrides = [a for a in ns.args if "=" in a]
    if len(configs) > 1:
        parser.error(f"give at most one config file, got {configs}")
    if ns.resume:
        overrides.append(f"run.resume={ns.resume}")
    if ns.fresh and ns.resume == "must":
        parser.error("--fresh starts over; it cannot be combined with --resume must")
    return (Path(configs[0]) if configs else None), overrides, ns


def main(argv: list[str] | None = None) -> int:
    config_path, overrides, ns = parse_args(argv)
    from restoration.trainer import run_command

    return run_command(config_path, overrides, ns)


if __name__ == "__main__":
    sys.exit(main())
