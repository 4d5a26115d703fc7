"""The whole pipeline as an MLflow pyfunc model: log it into a run, register it, serve it, `mlflow models predict` it.

Why "models from code" (`pyfunc_entry.py`) and not a pickled `PythonModel`: loading a model then runs our source
file, never unpickles anything, and the package travels with the model (`code_paths`), so a serving machine needs
only the pip requirements. The model's artifact `pipeline/` holds the inference networks' safetensors (detector,
MAT generator, colorizer or the baseline; no discriminators) and `pipeline.json`; `MODEL_CARD.md` beside `MLmodel`
says what the model is and how it scored (`model_card.py`), and is the description MLflow shows for it.

Input (a DataFrame, or JSON `dataframe_records` / `dataframe_split`, or a CSV): one row per image with either
`image`, the encoded file (PNG/JPEG/...) as bytes or base64 text, or `path`, a file readable by the server.
Output: one row per image: `image` (base64 PNG of the restored RGB), `width`, `height`, `lost_fraction` (of the
detected lost region) and `mask_source` (`exact`: the contest rule, `learned`: the learned detector, `none`: no lost
region found). Params: `seed`, `batch_size`, `truncation_psi` (MAT's style: 0 = mean style, the default; 1 =
sampled) and the inference settings `inpaint_mode`, `color_mode`, `chroma_scale`, `chroma_floor`, `chroma_flip`
(defaults: what the model's training chose, `pipeline.json`). A row's random draws depend on its position and the
seed only, never on the batch.

A request that cannot be answered raises `MlflowException` with `INVALID_PARAMETER_VALUE`, which the scoring server
answers with HTTP 400 and the message (any other exception becomes its generic "unexpected error"): no usable
column, a row that gives neither `image` nor `path`, a file that is missing or not an image (every such row named
with its reason), a param out of range.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import shutil
import tempfile
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
from mlflow.exceptions import MlflowException
from PIL import Image

from restoration.image_io import read_gray
from restoration.inference import InferenceSettings
from restoration.models.mat import INFERENCE_TRUNCATION
from restoration.pipeline import load_pipeline
from restoration.tracking import fluent_mlflow
from restoration.weights import (
    INFERENCE_NETWORKS,
    RESTORING_ROLES,
    recorded_settings,
    resolve_source,
    write_meta,
)

ENTRY = Path(__file__).with_name("pyfunc_entry.py")
CARD_FILE = "MODEL_CARD.md"
# what the served code imports (tests/test_mlflow_model.py derives it from the code and checks this list covers it);
# OpenCV is left out on purpose: `anchors` imports it only when present and the served fill is the biharmonic one
REQUIREMENTS = (
    "torch", "torchvision", "timm", "einops", "safetensors", "numpy", "pillow", "scipy", "scikit-image", "pyyaml",
    "accelerate", "kornia", "pandas", "mlflow",
)  # fmt: skip
COLUMNS = ("image", "path")
MAX_LISTED_ROWS = 10  # a bad request names this many bad rows, then counts the rest


def bad_request(message: str) -> MlflowException:
    """The error MLflow's scoring server answers with HTTP 400 and this message (`INVALID_PARAMETER_VALUE`)."""
    return MlflowException.invalid_parameter_value(message)


def _decode(value: Any) -> np.ndarray:
    """Encoded image bytes (or their base64 text) -> (H, W) uint8 gray, converted like the contest did."""
    if isinstance(value, str):
        try:
            value = base64.b64decode(value, validate=True)
        except binascii.Error as err:
            raise ValueError(f"text that is not base64 ({err})") from None
    if not isinstance(value, (bytes, bytearray)):
        raise ValueError(f"expected the encoded file as bytes or base64 text, got {type(value).__name__}")
    return read_gray(bytes(value)).gray


def _given(value: Any) -> bool:
    """A cell holds a value (pandas fills a column missing from a row with None or NaN)."""
    import pandas as pd

    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return False
    return not (isinstance(value, str) and not value.strip())


def _row_gray(image: Any, path: Any) -> np.ndarray:
    """One row's image as (H, W) uint8 gray (`image` first); raises ValueError naming the cell and what is wrong."""
    if _given(image):
        try:
            return _decode(image)
        except ValueError as err:
            raise ValueError(f"image: {err}") from None
    if _given(path):
        try:
            return read_gray(Path(path)).gray
        except ValueError as err:
            raise ValueError(f"path {str(path)!r}: {err}") from None
    raise ValueError("neither 'image' nor 'path' given")


def read_rows(frame: Any) -> list[np.ndarray]:
    """The request's images as (H, W) uint8 gray, one per row; raises `bad_request` naming every row that cannot be
    used and why, or saying that no row gives an image at all.

    MLflow drops the columns its signature does not name before the model sees the frame: a request with only
    unknown columns arrives as an empty frame, so its columns cannot be named here (the scoring server's message
    quotes the request's frame, columns included, before this reason)."""
    present = [c for c in COLUMNS if c in frame.columns]
    wanted = "one row per image with 'image' (the encoded file; base64 text in JSON) or 'path' (a file on the server)"
    if not present:
        raise bad_request(
            f"no column 'image' or 'path' in the request: send {wanted}; MLflow drops columns with other names before "
            "the model sees the request"
        )
    if len(frame) == 0:
        raise bad_request(f"no rows in the request: send {wanted}")
    grays: list[np.ndarray] = []
    problems: list[str] = []
    for i, row in enumerate(frame[present].to_dict("records")):
        try:
            grays.append(_row_gray(row.get("image"), row.get("path")))
        except ValueError as err:
            problems.append(f"row {i}: {err}")
    if problems:
        listed = "; ".join(problems[:MAX_LISTED_ROWS])
        more = f"; and {len(problems) - MAX_LISTED_ROWS} more" if len(problems) > MAX_LISTED_ROWS else ""
        raise bad_request(f"{len(problems)} of {len(frame)} rows cannot be restored: {listed}{more}")
    return grays


def request_settings(defaults: InferenceSettings, params: dict[str, Any]) -> tuple[InferenceSettings, int, int]:
    """(settings, seed, batch size) of a request: the model's defaults changed by the params it gives; raises
    `bad_request` with the reason for a value out of range."""
    try:
        settings = defaults.but(
            inpaint_mode=params.get("inpaint_mode"),
            color_mode=params.get("color_mode"),
            chroma_scale=None if params.get("chroma_scale") is None else float(params["chroma_scale"]),
            chroma_floor=None if params.get("chroma_floor") is None else float(params["chroma_floor"]),
            chroma_flip=None if params.get("chroma_flip") is None else bool(params["chroma_flip"]),
            truncation_psi=float(params.get("truncation_psi", INFERENCE_TRUNCATION)),
        )
    except ValueError as err:
        raise bad_request(f"params: {err}") from None
    batch = int(params.get("batch_size", 8))
    if batch < 1:
        raise bad_request(f"params: batch_size {batch}: expected 1 or more")
    return settings, int(params.get("seed", 0)), batch


def _encode_png(rgb: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


# `predict` takes a DataFrame whose columns the signature describes. At class creation MLflow prints advice to
# type-hint `predict` instead, under a warning filter of its own (`warnings.filterwarnings` cannot silence it); hints
# would make it validate requests by types that cannot say "image or path", so the advice is not printed.
with contextlib.redirect_stderr(io.StringIO()):

    class RestorationModel(mlflow.pyfunc.PythonModel):
        """The pyfunc model object, built by `pyfunc_entry.py` when MLflow loads the model."""

        pipeline = None

        def load_context(self, context: Any) -> None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
            self.pipeline = load_pipeline([context.artifacts["pipeline"]], device)

        def predict(self, context, model_input, params=None):  # no type hints: MLflow would read them as a schema
            import pandas as pd

            frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
            settings, seed, batch = request_settings(self.pipeline.defaults, params or {})
            grays = read_rows(frame)
            out = []
            for start in range(0, len(grays), batch):
                keys = [str(i) for i in range(start, start + batch)][: len(grays) - start]  # the row decides the draws
                out.extend(self.pipeline.restore(grays[start : start + batch], settings=settings, seed=seed, keys=keys))
            return pd.DataFrame(
                {
                    "image": [_encode_png(r.rgb) for r in out],
                    "width": [int(r.rgb.shape[1]) for r in out],
                    "height": [int(r.rgb.shape[0]) for r in out],
                    "lost_fraction": [float(1.0 - r.known.mean()) for r in out],
                    "mask_source": [r.mask_source for r in out],
                }
            )


def signature(defaults: InferenceSettings) -> Any:
    """Columns in and out, and the params a request may set; the inference settings' defaults are the model's own
    (`defaults`, from its `pipeline.json`), so the signature MLflow shows is what a request without params gets."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    inputs = Schema([ColSpec("binary", "image", required=False), ColSpec("string", "path", required=False)])
    outputs = Schema(
        [
            ColSpec("string", "image"),
            ColSpec("long", "width"),
            ColSpec("long", "height"),
            ColSpec("double", "lost_fraction"),
            ColSpec("string", "mask_source"),
        ]
    )
    params = ParamSchema(
        [
            ParamSpec("seed", "long", 0),
            ParamSpec("batch_size", "long", 8),
            ParamSpec("truncation_psi", "double", INFERENCE_TRUNCATION),
            ParamSpec("inpaint_mode", "string", defaults.inpaint_mode),
            ParamSpec("color_mode", "string", defaults.color_mode),
            ParamSpec("chroma_scale", "double", float(defaults.chroma_scale)),
            ParamSpec("chroma_floor", "double", float(defaults.chroma_floor)),
            ParamSpec("chroma_flip", "boolean", bool(defaults.chroma_flip)),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def pip_requirements() -> list[str]:
    """The running environment's versions of what inference imports (the model was tested with these)."""
    reqs = []
    for name in REQUIREMENTS:
        try:
            reqs.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            reqs.append(name)
    return reqs


def inference_weights(sources: list[Path], dst: Path) -> Path:
    """Copy only what inference needs (no discriminators, no optimizer state) from `sources` (first match per
    network, as `load_pipeline` does) into `dst`, with a `pipeline.json` whose model sections come from the source
    that provided each network."""
    resolved = [resolve_source(s) for s in sources]
    dst.mkdir(parents=True, exist_ok=True)
    meta = dict(resolved[0].meta)
    roles = []
    for spec in INFERENCE_NETWORKS:
        source = next((s for s in resolved if s.file(spec.name) is not None), None)
        if source is not None:
            shutil.copyfile(source.file(spec.name), dst / f"{spec.name}.safetensors")
            meta[spec.section] = source.meta.get(spec.section)
            roles.append(spec.role)
    if not set(RESTORING_ROLES) & set(roles):
        raise ValueError(f"{', '.join(map(str, sources))}: no inpainter, colorizer or baseline weights to package")
    meta["stages"] = sorted({str(s.meta.get("stage")) for s in resolved})
    if any(s.meta.get("inference") for s in resolved):  # the defaults `load_pipeline` takes from the chain
        meta["inference"] = recorded_settings(resolved).recorded()
    write_meta(dst, meta)
    return dst


def _model_kwargs(weights_dir: Path) -> dict[str, Any]:
    # the signature is given; an input example would only make MLflow run the model at logging time
    warnings.filterwarnings("ignore", message=".*input example was not provided.*")
    return {
        "python_model": str(ENTRY),
        "artifacts": {"pipeline": str(weights_dir)},
        "code_paths": [str(Path(__file__).resolve().parent)],
        "signature": signature(recorded_settings([resolve_source(weights_dir)])),
        "pip_requirements": pip_requirements(),
    }


def _card(sources: list[Path], dst: Path) -> Path:
    # imported here: the card reads training files (shard manifests, run configs) that serving never needs
    from restoration.model_card import model_card

    path = dst / CARD_FILE
    path.write_text(model_card(sources))
    return path


def save_pipeline_model(sources: list[Path], path: Path) -> Path:
    """Write the pyfunc model, with its `MODEL_CARD.md`, to a local directory (no tracking server involved)."""
    with tempfile.TemporaryDirectory(prefix="restoration-export-") as tmp:
        weights = inference_weights(sources, Path(tmp) / "pipeline")
        mlflow.pyfunc.save_model(path=str(path), **_model_kwargs(weights))
    _card(sources, Path(path))
    return path


def describe(card: str, *, model_id: str, registered: tuple[str, int] | None = None) -> None:
    """Show the card where MLflow 3 shows a description: the logged model's `mlflow.note.content` tag (the
    Description column of the experiment's model list) and, when registered, the registered model and its version
    (the model's description is the card of its latest registered version)."""
    from mlflow import MlflowClient

    from restoration.model_card import description

    client = MlflowClient()
    text = description(card)
    client.set_logged_model_tags(model_id, {"mlflow.note.content": text})
    if registered is not None:
        name, version = registered
        client.update_registered_model(name, description=text)
        client.update_model_version(name, str(version), description=text)


def log_pipeline_model(
    sources: list[Path], *, tracking_uri: str, run_id: str, register_as: str | None = None, name: str = "model"
) -> str:
    """Log the pyfunc model into an existing run (optionally registering it), with its `MODEL_CARD.md` and the
    card as its description; returns the model URI.

    MLflow's fluent API is the only way to log a pyfunc model into a run, so its process-wide state is set and
    left clean: the run is re-opened for this call only and ended again as FINISHED. In MLflow 3 the model is a
    logged model of its own (`models:/m-<id>`), linked to the run under `name`.
    """
    from mlflow import MlflowClient

    with tempfile.TemporaryDirectory(prefix="restoration-export-") as tmp, fluent_mlflow(tracking_uri):
        weights = inference_weights(sources, Path(tmp) / "pipeline")
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(name=name, registered_model_name=register_as, **_model_kwargs(weights))
        card = _card(sources, Path(tmp))
        MlflowClient().log_model_artifact(info.model_id, str(card))  # beside MLmodel, as `save_pipeline_model` puts it
        registered = (register_as, info.registered_model_version) if register_as else None
        describe(card.read_text(), model_id=info.model_id, registered=registered)
    return info.model_uri
