"""Score predictions with the contest metric: ``restoration-evaluate --pred DIR|ZIP --gt DIR --input DIR|CSV``.

The lost region (needed for M) comes either from `--masks` (white = lost, or `--mask-white known`) or, exactly,
from the masked inputs: lost = input != L(gt), as the contest data was made (`known_from_pair`). Files are matched
by name without extension, so a submission zip, a prediction folder and the contest folders line up. Prints a
table (per image for small sets, always the mean), writes the per-image scores as JSON and CSV, and can log the
means into an MLflow run, so a prediction run sits next to the training run that produced its model.

Every image is decoded by the rule that prediction and shard building use (`restoration.image_decoding`). A file
that cannot be used (damaged, a zip member with a bad CRC, over the pixel limit) is reported by its path and not
scored (exit 1). A folder or zip holding one name twice (`img2.png` and `c/img2.png`) is refused (exit 2): scoring
one of them would be a guess.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from restoration.data.exact_mask import known_from_pair
from restoration.image_io import IMAGE_SUFFIXES, InputError, list_inputs, read_gray, read_rgb
from restoration.metrics import contest_score, psnr
from restoration.tracking import Tracker, default_tracking_uri

KEYS = ("S", "M", "C", "score", "psnr")
T = TypeVar("T")


def _read(what: str, path: Path, read: Callable[[Path], T]) -> T:
    """`read(path)`, its ValueError naming the file: 'input x/TEST_001.png: not a readable image (...)'."""
    try:
        return read(path)
    except ValueError as err:
        raise ValueError(f"{what} {path}: {err}") from None


def _images_in(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            if path.stem in found:
                raise InputError(f"{folder}: two files named {path.stem!r} ({found[path.stem]} and {path})")
            found[path.stem] = path
    return found


def _zip_readers(pred: Path) -> dict[str, Callable[[], np.ndarray]]:
    try:
        zf = zipfile.ZipFile(pred)
    except (zipfile.BadZipFile, OSError) as err:
        raise InputError(f"{pred}: not a readable zip file ({err})") from None
    by_name: dict[str, list[str]] = {}
    for info in zf.infolist():
        if not info.is_dir() and Path(info.filename).suffix.lower() in IMAGE_SUFFIXES:
            by_name.setdefault(Path(info.filename).stem, []).append(info.filename)
    clashes = sorted(members for members in by_name.values() if len(members) > 1)
    if clashes:
        listing = "; ".join(" and ".join(members) for members in clashes[:10])
        raise InputError(f"{pred}: predictions are matched by file name and these names occur twice: {listing}")

    def reader(member: str) -> Callable[[], np.ndarray]:
        def read() -> np.ndarray:
            try:
                data = zf.read(member)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError) as err:
                raise ValueError(f"zip member {member!r} of {pred}: damaged ({err})") from None
            try:
                return read_rgb(data)
            except ValueError as err:
                raise ValueError(f"zip member {member!r} of {pred}: {err}") from None

        return read

    return {name: reader(members[0]) for name, members in by_name.items()}


def prediction_readers(pred: Path) -> dict[str, Callable[[], np.ndarray]]:
    """name -> a function reading that prediction as RGB, for a folder or a (submission) zip; its ValueError names
    the file."""
    if pred.is_file() and zipfile.is_zipfile(pred):
        return _zip_readers(pred)
    if pred.is_file():
        raise InputError(f"{pred}: expected a folder of predictions or a zip file")
    return {stem: (lambda p=path: _read("prediction", p, read_rgb)) for stem, path in _images_in(pred).items()}


def known_from_mask_file(path: Path, white: str) -> np.ndarray:
    arr = np.asarray(read_gray(path).gray)
    marked = arr > 127
    return (marked if white == "known" else ~marked).astype(np.uint8)


def evaluate_files(
    pred: Path,
    gt: Path,
    *,
    masks: Path | None = None,
    inputs: list[str] | None = None,
    mask_white: str = "lost",
    device: str = "cpu",
) -> dict:
    """Per-image scores and their mean; images without a prediction are reported as `missing`."""
    gts = _images_in(gt)
    preds = prediction_readers(pred)
    mask_files = _images_in(masks) if masks is not None else {}
    input_files = {Path(item.name).stem: item.path for item in list_inputs(inputs)} if inputs else {}
    rows, errors = [], []
    missing = sorted(set(gts) - set(preds))
    for name in tqdm(sorted(set(gts) & set(preds)), desc="scoring", unit="img"):
        try:
            gt_rgb = _read("ground truth", gts[name], read_rgb)
            pred_rgb = preds[name]()
            if pred_rgb.shape != gt_rgb.shape:
                raise ValueError(f"size {pred_rgb.shape[1]}x{pred_rgb.shape[0]} differs from the ground truth's "
                                 f"{gt_rgb.shape[1]}x{gt_rgb.shape[0]}")  # fmt: skip
            if masks is not None:
                if name not in mask_files:
                    raise ValueError(f"no mask named {name} in {masks}")
                known = _read("mask", mask_files[name], lambda p: known_from_mask_file(p, mask_white))
            else:
                if name not in input_files:
                    raise ValueError("no input image of this name")
                gray_gt = np.asarray(Image.fromarray(gt_rgb).convert("L"))
                known, _ = known_from_pair(_read("input", input_files[name], lambda p: read_gray(p).gray), gray_gt)
            if known.shape != gt_rgb.shape[:2]:
                raise ValueError("the mask/input size differs from the ground truth's")
        except ValueError as err:
            errors.append({"name": name, "error": str(err)})
            continue
        to_t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].to(device)  # noqa: E731 - (1, 3, H, W)
        p, g = to_t(pred_rgb), to_t(gt_rgb)
        parts = contest_score(p, g, torch.from_numpy(known)[None, None].to(device))
        row = {"name": name, **{k: float(v[0]) for k, v in parts.items()}, "psnr": float(psnr(p, g)[0])}
        row["lost_fraction"] = float(1.0 - known.mean())
        rows.append(row)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in KEYS} if rows else {k: float("nan") for k in KEYS}
    return {"mean": mean, "count": len(rows), "images": rows, "missing": missing, "errors": errors}


def format_table(result: dict, per_image: bool) -> str:
    lines = [f"{'image':<28} " + " ".join(f"{k:>8}" for k in KEYS)]
    if per_image:
        for r in result["images"]:
            lines.append(f"{r['name'][:28]:<28} " + " ".join(f"{r[k]:8.4f}" for k in KEYS))
    mean = result["mean"]
    lines.append(f"{'mean of ' + str(result['count']):<28} " + " ".join(f"{mean[k]:8.4f}" for k in KEYS))
    return "\n".join(lines)


def write_reports(result: dict, json_path: Path) -> Path:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2))
    csv_path = json_path.with_suffix(".csv")
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["name", *KEYS, "lost_fraction"])
        writer.writeheader()
        writer.writerows(result["images"])
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
    parser = argparse.ArgumentParser(prog="restoration-evaluate", description="Score predictions with the contest "
                                     "metric (0.2 S + 0.4 M + 0.4 C) and PSNR.")  # fmt: skip
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
    ns = parse_args(argv)
    try:
        result = evaluate_files(
            ns.pred, ns.gt, masks=ns.masks, inputs=ns.input, mask_white=ns.mask_white, device=ns.device
        )
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if result["count"] == 0:
        print(f"error: no prediction in {ns.pred} could be scored against {ns.gt}", file=sys.stderr)
        for e in result["errors"][:10]:
            print(f"  {e['name']}: {e['error']}", file=sys.stderr)
        return 2
    print(format_table(result, ns.per_image or result["count"] <= 20))
    json_path = ns.json or ns.pred.resolve().parent / f"{ns.pred.stem}_scores.json"
    csv_path = write_reports(result, json_path)
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
