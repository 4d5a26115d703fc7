"""Package a trained pipeline as an MLflow pyfunc model: ``python -m restoration.export --model RUN [...]``.

Training logs the model by itself at the end of `joint` and `gan_baseline` runs; this command is for everything
else: a checkpoint of a run that was stopped early, a two-stage pipeline (`--model INPAINT_RUN --model
COLORIZE_RUN`), a model to register under a name, or a model directory to copy to a serving machine (`--out`).
By default the model is logged into the MLflow run that trained the weights (found in the checkpoint's
`trainer.json`), so it appears next to that run's metrics and panels.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from restoration.checkpoint import TRAINER_STATE, latest_checkpoint
from restoration.cli_help import add_version, prog_name
from restoration.mlflow_model import log_pipeline_model, save_pipeline_model
from restoration.tracking import Tracker, default_tracking_uri
from restoration.weights import ModelSourceError, resolve_source


def training_run_id(model: Path) -> str | None:
    """The MLflow run id stored in the checkpoints of the run that produced `model`, if any."""
    source = resolve_source(model)
    directory = source.directory
    candidates = [directory / TRAINER_STATE]
    for run_dir in (directory.parent, directory.parent.parent):  # final/ -> run, checkpoints/step-N -> run
        if (run_dir / "config.yaml").is_file():
            latest = latest_checkpoint(run_dir)
            if latest is not None:
                candidates.append(latest / TRAINER_STATE)
    for path in candidates:
        if path.is_file():
            run_id = json.loads(path.read_text()).get("mlflow_run_id")
            if run_id:
                return str(run_id)
    return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog_name("restoration-export", "restoration.export"),
        description="Package a trained pipeline as an MLflow pyfunc model (log it into a run and/or register it, "
        "or save it).",
    )
    add_version(parser)
    parser.add_argument(
        "--model", action="append", type=Path, required=True, metavar="DIR",
        help="run dir, final/ export or checkpoint dir; repeat to combine (first match per network)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="save the model to this directory instead of logging")
    parser.add_argument("--run-id", default=None, help="log into this MLflow run (default: the training run)")
    parser.add_argument("--experiment", default="restoration", help="experiment of a new run when no run is known")
    parser.add_argument("--register", default=None, metavar="NAME", help="also register the model under NAME")
    parser.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI or runs/mlflow.db")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    ns = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if ns.out is not None:
            if ns.out.exists():
                raise ModelSourceError(f"{ns.out}: already exists (MLflow will not overwrite a model directory)")
            save_pipeline_model(ns.model, ns.out)
            print(f"saved the pyfunc model to {ns.out}\n  try: mlflow models predict -m {ns.out} -i images.csv "
                  "-t csv --env-manager local")  # fmt: skip
            return 0
        tracking_uri = ns.tracking_uri or default_tracking_uri(Path("runs"))
        run_id = ns.run_id or training_run_id(ns.model[0])
        if run_id is None:
            tracker = Tracker(enabled=True)
            run_id = tracker.start(tracking_uri=tracking_uri, experiment=ns.experiment, run_name="export")
            tracker.end()
            if run_id is None:
                raise ModelSourceError(f"could not create an MLflow run in {tracking_uri}")
        try:
            uri = log_pipeline_model(ns.model, tracking_uri=tracking_uri, run_id=run_id, register_as=ns.register)
        except Exception as err:  # noqa: BLE001 - MLflow raises many types; say where and what
            raise ModelSourceError(
                f"could not log the model into run {run_id} of {tracking_uri} ({type(err).__name__}: {err}); "
                "check --tracking-uri, or pass --run-id / --experiment"
            ) from err
    except (ModelSourceError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"logged the pyfunc model, with its MODEL_CARD.md, into run {run_id}: {uri} (also runs:/{run_id}/model)")
    if ns.register:
        print(f"registered as models:/{ns.register}/<version> (the newest: models:/{ns.register}/latest)")
    print(f"predict with it: restoration-predict --model {uri} --tracking-uri {tracking_uri} --input ... --out ...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
