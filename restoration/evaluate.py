"""Score predictions with the contest metric: ``restoration-evaluate --pred DIR|ZIP --gt DIR --input DIR|CSV``.

The lost region (needed for M) comes either from `--masks` (white = lost, or `--mask-white known`) or, exactly,
from the masked inputs: lost = input != L(gt), as the contest data was made (`known_from_pair`). Files are matched
by name without extension, so a submission zip, a prediction folder and the contest folders line up. Prints a
table (per image for small sets, always the mean), writes the per-image scores as JSON and CSV, and can log the
means into an MLflow run, so a prediction run sits next to the training run that produced its model.

Every image is decoded by the rule that prediction and shard building use (`restoration.image_decoding`). A file
that cannot be used (damaged, over the pixel limit, a zip member with a bad CRC or unpacking to more bytes than an
image at the pixel limit could: `scoring.zip_member_limit`) is reported by its path and not scored (exit 1), and so
is an image whose score is not defined (smaller than the 7x7 SSIM window): the mean is over the scored images only,
never NaN. A folder or zip holding one name twice (`img2.png` and `c/img2.png`) is refused (exit 2): scoring one of
them would be a guess. The reports' paths are checked before scoring: `--json` that is a folder, or in a read-only
folder, is refused at once (exit 2); a write failing afterwards is one line (exit 1). The per-image csv names files
as the file system gives them.

The scoring itself (reading predictions from folders and zips, `evaluate_files`) is `restoration.scoring`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from restoration.cli_help import add_version, prog_name
from restoration.image_io import InputError, OutputError, escape_undecodable_output, writable_file, write_report_csv
from restoration.scoring import KEYS, evaluate_files, format_table
from restoration.tracking import Tracker, default_tracking_uri


def write_reports(result: dict, json_path: Path) -> Path:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2))  # json escapes a non-UTF-8 name (\udcXX)
    csv_path = json_path.with_suffix(".csv")
    columns = ["name", *KEYS, "lost_fraction"]
    write_report_csv(csv_path, columns, ([row[c] for c in columns] for row in result["images"]))
    return csv_path


def log_to_mlflow(result: dict, json_path: Path, *, tracking_uri: str, run_id: str | None, experiment: str,
                  run_name: str, prefix: str) -> str | None:  # fmt: skip
    tracker = Tracker(enabled=True)
    rid = tracker.start(tracking_uri=tracking_uri, experiment=experiment, run_name=run_name, run_id=run_id)
    tracker.log_metrics({f"{prefix}{k}": v for k, v in result["mean"].items()}, step=0)
    tracker.log_artifact(json_path, "evaluation")
    tracker.end()
    return rid


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog_name("restoration-evaluate", "restoration.evaluate"),
        description="Score predictions with the contest metric (0.2 S + 0.4 M + 0.4 C) and PSNR.",
    )
    add_version(parser)
    parser.add_argument("--pred", type=Path, required=True, help="folder of predicted PNGs or a submission zip")
    parser.add_argument("--gt", type=Path, required=True, help="folder of ground-truth color images")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--masks", type=Path, help="folder of masks named like the images (white = lost)")
    where.add_argument("--input", nargs="+", help="the masked gray inputs (folder, csv or files): the lost region "
                       "is derived exactly as input != L(gt)")  # fmt: skip
    parser.add_argument("--mask-white", choices=("lost", "known"), default="lost", help="what white marks in --masks")
    parser.add_argument("--json", type=Path, default=None, help="per-image scores (default: next to --pred, "
                        "<pred>_scores.json; a .csv is written beside it)")  # fmt: skip
    parser.add_argument("--per-image", action="store_true", help="print every image (default: when <= 20)")
    parser.add_argument("--allow-missing", action="store_true", help="exit 0 even when predictions are missing")
    parser.add_argument("--device", default="cpu")
    tracking = parser.add_argument_group("MLflow (optional)")
    tracking.add_argument("--mlflow-run-id", default=None, help="log the means into this existing run")
    tracking.add_argument("--mlflow-experiment", default=None, help="log into a new run of this experiment")
    tracking.add_argument("--mlflow-prefix", default="eval/", help="metric name prefix (default: eval/)")
    tracking.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI or runs/mlflow.db")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    escape_undecodable_output()
    ns = parse_args(argv)
    json_path = ns.json or ns.pred.resolve().parent / f"{ns.pred.stem}_scores.json"
    try:
        writable_file(json_path, "--json" if ns.json else "the scores file (next to --pred; choose it with --json)")
        writable_file(json_path.with_suffix(".csv"), "the scores csv (beside --json)")
        result = evaluate_files(
            ns.pred, ns.gt, masks=ns.masks, inputs=ns.input, mask_white=ns.mask_white, device=ns.device
        )
    except (InputError, OutputError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if result["count"] == 0:
        print(f"error: no prediction in {ns.pred} could be scored against {ns.gt}", file=sys.stderr)
        for e in result["errors"][:10]:
            print(f"  {e['name']}: {e['error']}", file=sys.stderr)
        return 2
    print(format_table(result, ns.per_image or result["count"] <= 20))
    try:
        csv_path = write_reports(result, json_path)
    except OSError as err:  # a full disk, a folder made read-only while scoring, ...
        print(f"error: writing {err.filename or json_path} failed ({err.strerror or err}); fix it and rerun",
              file=sys.stderr)  # fmt: skip
        return 1
    print(f"per-image scores: {json_path} and {csv_path}")
    for e in result["errors"]:
        print(f"not scored: {e['name']}: {e['error']}")
    if result["missing"]:
        print(f"missing predictions for {len(result['missing'])} ground-truth image(s): "
              + ", ".join(result["missing"][:10]))  # fmt: skip
    if ns.mlflow_run_id or ns.mlflow_experiment:
        rid = log_to_mlflow(
            result, json_path, tracking_uri=ns.tracking_uri or default_tracking_uri(Path("runs")),
            run_id=ns.mlflow_run_id, experiment=ns.mlflow_experiment or "restoration",
            run_name=f"evaluate-{ns.pred.stem}", prefix=ns.mlflow_prefix,
        )  # fmt: skip
        print(f"logged to MLflow run {rid}")
    failed = result["errors"] or (result["missing"] and not ns.allow_missing)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
