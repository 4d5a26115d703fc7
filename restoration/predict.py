"""Restore images with a trained pipeline: ``restoration-predict --model RUN --input test.csv --out DIR --zip sub.zip``.

`--model`: a run directory, its `final/` export, a checkpoint directory, a saved MLflow model directory or an
MLflow model URI (`runs:/<id>/model`, `models:/<name>/<version>`); give it twice to chain an `inpaint` and a
`colorize` export. `--input`: a contest csv, folders or files. Outputs are PNGs named like the inputs (inputs whose
names collide, `a/img.png` and `b/img.png`, keep their relative path under `--out`); `--zip` packs them flat (a
contest submission, so it refuses colliding names) under the file system's names, bytes that are not UTF-8 included.

Why it is built this way: a long prediction job must not lose work. Each output is written atomically as soon as
its batch is done, a bad input file (unreadable, or not a regular file: a FIFO is never opened) is listed in
`skipped.csv` and skipped instead of stopping the run, and `--skip-existing` continues an interrupted run. Output
paths are checked before the model is loaded: `--out` that is a file or read-only is refused at once (exit 2); a
write that fails during the run (a full disk) stops it with one line (exit 1). Results are reproducible for a given
`--seed`: each image draws MAT's latent and its always-on dropout from a stream seeded by the seed and its file
name, so neither `--batch-size` nor the order of the inputs changes an output.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import sys
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

import torch
from tqdm.auto import tqdm

from restoration.cli_help import add_version, prog_name
from restoration.image_io import (
    ImageItem,
    InputError,
    OutputError,
    escape_undecodable_output,
    list_inputs,
    read_gray,
    writable_file,
    writable_folder,
    write_png_atomic,
    write_report_csv,
)
from restoration.inference import COLOR_MODES, INPAINT_MODES, InferenceSettings
from restoration.models.mat import INFERENCE_TRUNCATION
from restoration.pipeline import Pipeline, load_pipeline
from restoration.tracking import default_tracking_uri, fetch_mlflow_model
from restoration.weights import ModelSourceError

log = logging.getLogger("restoration.predict")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    return device


def open_models(specs: list[str], device: torch.device, tracking_uri: str, scratch: Path) -> Pipeline:
    """Local paths as they are, MLflow URIs downloaded into `scratch` first."""
    local: list[str | Path] = []
    for i, spec in enumerate(specs):
        if _URI.match(spec) and not Path(spec).exists():
            local.append(fetch_mlflow_model(spec, scratch / f"model_{i}", tracking_uri))
        else:
            local.append(spec)
    return load_pipeline(local, device)


def chosen_settings(pipeline: Pipeline, ns: argparse.Namespace) -> InferenceSettings:
    """The model's recorded defaults, with the flags the user gave on top."""
    return pipeline.defaults.but(
        inpaint_mode=ns.inpaint_mode, color_mode=ns.color_mode, chroma_scale=ns.chroma_scale,
        chroma_floor=ns.chroma_floor, chroma_flip=ns.chroma_flip, truncation_psi=ns.truncation, precision=ns.precision,
    )  # fmt: skip


def check_flat_names(items: list[ImageItem]) -> None:
    """A contest zip is flat: two inputs with the same file name would overwrite each other."""
    counts = Counter(Path(item.name).name for item in items)
    clashes = sorted(name for name, n in counts.items() if n > 1)
    if clashes:
        raise InputError(f"--zip is flat but these output names occur more than once: {', '.join(clashes[:10])}")


class FileSystemName(zipfile.ZipInfo):
    """A zip member named as the file system names its file: UTF-8 (flagged as such) when the name is, else its own
    bytes without the UTF-8 flag, as Info-ZIP's `zip` stores them; `zipfile` alone cannot encode such a name."""

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:  # noqa: N802 - zipfile's hook for the stored name
        try:
            return super()._encodeFilenameFlags()
        except UnicodeEncodeError:  # surrogate escapes: bytes that are not UTF-8
            return os.fsencode(self.filename), self.flag_bits & ~0x800


def write_zip(out_dir: Path, names: list[str], zip_path: Path) -> None:
    """Flat zip of the given outputs; written under a temporary name and renamed when complete."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = zip_path.with_name(f".{zip_path.name}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:  # PNGs are compressed already
        for name in names:
            info = FileSystemName.from_file(out_dir / name, arcname=Path(name).name)
            info.compress_type = zipfile.ZIP_STORED
            with open(out_dir / name, "rb") as src, zf.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    tmp.replace(zip_path)


def predict(
    pipeline: Pipeline,
    items: list[ImageItem],
    out_dir: Path,
    *,
    settings: InferenceSettings | None = None,
    batch_size: int = 8,
    seed: int = 0,
    skip_existing: bool = False,
) -> dict[str, list]:
    """Restore every item into `out_dir`; returns the names restored now (`written`), the names kept from an
    earlier run (`existing`, with `skip_existing`), the skipped (path, reason) pairs, the inputs converted from
    color or without a detected lost region, and the (path, reason, fallback) of the inputs where the exact contest
    rule was refused (`exact_refused`: their largest flat region is a background, not a hole)."""
    report: dict[str, list] = {
        "written": [], "existing": [], "skipped": [], "converted": [], "no_hole": [], "exact_refused": [],
    }  # fmt: skip
    todo = []
    for item in items:
        if skip_existing and (out_dir / item.name).is_file():
            report["existing"].append(item.name)
        else:
            todo.append(item)
    with tqdm(total=len(todo), desc="restoring", unit="img") as progress:  # its line ends also on an error
        for start in range(0, len(todo), batch_size):
            batch, grays = [], []
            for item in todo[start : start + batch_size]:
                try:
                    image = read_gray(item.path)
                except ValueError as err:
                    report["skipped"].append((str(item.path), str(err)))
                    progress.update(1)
                    continue
                if image.converted_from:
                    report["converted"].append(f"{item.path} ({image.converted_from})")
                batch.append(item)
                grays.append(image.gray)
            if not batch:
                continue
            keys = [Path(item.name).stem for item in batch]  # an image's draws depend on its name, not its batch
            restored = pipeline.restore(grays, settings=settings, seed=seed, keys=keys)
            for item, result in zip(batch, restored):
                write_png_atomic(result.rgb, out_dir / item.name)
                report["written"].append(item.name)
                if result.exact_refused:
                    fallback = "learned detector used" if result.mask_source == "learned" else "nothing inpainted"
                    report["exact_refused"].append((str(item.path), result.exact_refused, fallback))
                elif result.mask_source == "none":
                    report["no_hole"].append(str(item.path))
            progress.update(len(batch))
    return report


def write_skipped(out_dir: Path, skipped: list[tuple[str, str]]) -> Path:
    return write_report_csv(out_dir / "skipped.csv", ["path", "reason"], skipped)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog_name("restoration-predict", "restoration.predict"),
        description="Restore color images from masked gray inputs with a trained model.",
    )
    add_version(parser)
    parser.add_argument(
        "--model", action="append", required=True, metavar="DIR|URI",
        help="run dir, final/ export, checkpoint dir, MLflow model dir or URI (runs:/ID/model, models:/NAME/VER); "
        "repeat to combine (first match per network)",
    )  # fmt: skip
    parser.add_argument("--input", nargs="+", required=True, metavar="CSV|DIR|FILE", help="contest csv, folders, files")
    parser.add_argument("--out", type=Path, default=Path("predictions"), help="output folder (default: predictions)")
    parser.add_argument("--zip", type=Path, default=None, help="also write a flat zip of the outputs (a submission)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto", help="auto (GPU when there is one), cpu, cuda, cuda:1, ...")
    parser.add_argument("--seed", type=int, default=0, help="seed of MAT's latent and dropout draws (with each "
                        "image's file name: an image restores the same in any batch or order)")  # fmt: skip
    parser.add_argument(
        "--precision", choices=("fp32", "bf16"), default=None,
        help="fp32 (the default) or bf16 autocast (faster on GPUs; outputs differ by rounding)",
    )  # fmt: skip
    parser.add_argument(
        "--truncation", type=float, default=None, metavar="PSI",
        help=f"MAT's style truncation: {INFERENCE_TRUNCATION:g} = mean style (default, best contest score), "
        "1 = sampled textures",
    )  # fmt: skip
    parser.add_argument(
        "--inpaint-mode", choices=INPAINT_MODES, default=None,
        help="tile: MAT window by window; resize: MAT on the whole image resized to its window, the fill upsampled; "
        "fill: classical (biharmonic) fill of the gray, no MAT (default: the model's pipeline.json, measured "
        "when a joint training ended, else tile)",
    )  # fmt: skip
    parser.add_argument(
        "--color-mode", choices=COLOR_MODES, default=None,
        help="full: colorizer on the whole image; resize: chroma at the colorizer's training resolution, upsampled "
        "under the full-resolution luma (default: the model's pipeline.json, else resize)",
    )  # fmt: skip
    parser.add_argument(
        "--chroma-scale", type=float, default=None, metavar="X",
        help="the colorizer's chroma times X in [0, 3]: below 1 less saturated, above 1 more, the hue and the luma "
        "kept (default: the model's "
        "pipeline.json, measured when its training ended, else 1)",
    )  # fmt: skip
    parser.add_argument(
        "--chroma-floor", type=float, default=None, metavar="X",
        help="raise each pixel's chroma (Cb/Cr offset, after --chroma-scale) to at least X in [0, 0.25], the hue and "
        "the luma kept, so that faint hues survive 8-bit rounding (default: the model's pipeline.json, measured "
        "when its training ended, else 0)",
    )  # fmt: skip
    parser.add_argument(
        "--chroma-flip", action=argparse.BooleanOptionalAction, default=None,
        help="average the chroma with that of the mirrored image (test-time augmentation; default: the model's "
        "pipeline.json, else off)",
    )  # fmt: skip
    parser.add_argument("--skip-existing", action="store_true", help="keep outputs already in --out (resume a run)")
    parser.add_argument("--strict", action="store_true", help="exit with 1 when any input had to be skipped")
    parser.add_argument("--tracking-uri", default=None, help="MLflow store for URIs (default: $MLFLOW_TRACKING_URI "
                        "or runs/mlflow.db)")  # fmt: skip
    ns = parser.parse_args(argv)
    if ns.batch_size < 1:
        parser.error("--batch-size must be >= 1")
    return ns


def main(argv: list[str] | None = None) -> int:
    escape_undecodable_output()
    ns = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    try:
        items = list_inputs(ns.input)
        if ns.zip is not None:
            check_flat_names(items)
        writable_folder(ns.out, "--out")  # before the model is loaded: a wrong path costs nothing
        if ns.zip is not None:
            writable_file(ns.zip, "--zip")
        device = pick_device(ns.device)
        with tempfile.TemporaryDirectory(prefix="restoration-model-") as scratch:
            tracking_uri = ns.tracking_uri or default_tracking_uri(Path("runs"))
            pipeline = open_models(ns.model, device, tracking_uri, Path(scratch))
        settings = chosen_settings(pipeline, ns)
    except (InputError, OutputError, ModelSourceError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"model: {pipeline.describe(settings)}")
    print(f"{len(items)} input(s) -> {ns.out}")
    try:
        return run(pipeline, items, ns, settings)
    except OSError as err:  # a full disk, a folder made read-only during the run, ...
        where = err.filename or ns.out
        print(f"error: writing {where} failed ({err.strerror or err}); the images already written are kept: fix it "
              "and rerun the same command with --skip-existing to continue", file=sys.stderr)  # fmt: skip
        return 1


def run(pipeline: Pipeline, items: list[ImageItem], ns: argparse.Namespace, settings: InferenceSettings) -> int:
    """Restore, report and zip, once the inputs, outputs and model are known to be usable; the exit code."""
    report = predict(
        pipeline, items, ns.out, settings=settings, batch_size=ns.batch_size, seed=ns.seed,
        skip_existing=ns.skip_existing,
    )  # fmt: skip

    if report["converted"]:
        print(
            f"warning: {len(report['converted'])} color input(s) converted to gray (PIL 'L'), e.g. "
            + ", ".join(report["converted"][:3])
        )
    if report["no_hole"]:
        print(
            f"warning: no lost region found in {len(report['no_hole'])} input(s) (the contest fill rule does not apply"
            f" and the model has no learned detector): colorized as they are, e.g. {', '.join(report['no_hole'][:3])}"
        )
    if report["exact_refused"]:
        listing = "; ".join(f"{path}: {reason} ({fallback})" for path, reason, fallback in report["exact_refused"][:3])
        print(
            f"warning: the contest fill rule was refused for {len(report['exact_refused'])} input(s), their known "
            f"pixels kept: {listing}"
        )
    print(f"restored {len(report['written'])} image(s) into {ns.out}")
    if report["existing"]:
        print(f"kept {len(report['existing'])} already in {ns.out} from an earlier run (--skip-existing)")
    (ns.out / "skipped.csv").unlink(missing_ok=True)  # it lists this run's skips, not an earlier run's
    if report["skipped"]:
        listing = write_skipped(ns.out, report["skipped"])
        print(f"skipped {len(report['skipped'])} unreadable input(s), listed in {listing}:")
        for path, reason in report["skipped"][:10]:
            print(f"  {path}: {reason}")
    if ns.zip is not None:
        done = set(report["written"]) | set(report["existing"])
        names = [item.name for item in items if item.name in done]
        write_zip(ns.out, names, ns.zip)
        print(f"submission zip: {ns.zip} ({len(names)} files)")
    if not (report["written"] or report["existing"]):
        print(f"error: no image restored: none of the {len(items)} input(s) could be read as an image",
              file=sys.stderr)  # fmt: skip
        return 1
    return 1 if (ns.strict and report["skipped"]) else 0


if __name__ == "__main__":
    sys.exit(main())
