"""The whole pipeline as an MLflow pyfunc model: log it into a run, register it, serve it, `mlflow models predict` it.

Why "models from code" (`pyfunc_entry.py`) and not a pickled `PythonModel`: loading a model then runs our source
file, never unpickles anything, and the package travels with the model (`code_paths`), so a serving machine needs
only the pip requirements. The model's artifact `pipeline/` holds the inference networks' safetensors (detector,
MAT generator, colorizer or the baseline; no discriminators) and `pipeline.json`.

Input (a DataFrame, or JSON `dataframe_records` / `dataframe_split`, or a CSV): one row per image with either
`image`, the encoded file (PNG/JPEG/...) as bytes or base64 text, or `path`, a file readable by the server.
Output: one row per image: `image` (base64 PNG of the restored RGB), `width`, `height`, `lost_fraction` (of the
detected lost region) and `mask_source` (`exact`: the contest rule, `learned`: the learned detector, `none`: no lost
region found). Params: `seed`, `batch_size`, `truncation_psi` (MAT's style: 0 = mean style, the default; 1 =
sampled). A row's random draws depend on its position and the seed only, never on the batch.
"""

from __future__ import annotations

import base64
import binascii
import io
import shutil
import tempfile
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
from PIL import Image

from restoration.image_io import read_gray
from restoration.models.mat import INFERENCE_TRUNCATION
from restoration.pipeline import load_pipeline
from restoration.tracking import fluent_mlflow
from restoration.weights import INFERENCE_NETWORKS, RESTORING_ROLES, recorded_settings, resolve_source, write_meta

ENTRY = Path(__file__).with_name("pyfunc_entry.py")
REQUIREMENTS = (
    "torch", "torchvision", "timm", "einops", "safetensors", "numpy", "pillow", "scipy", "pyyaml", "accelerate",
    "kornia", "pandas", "mlflow",
)  # fmt: skip


def _decode(value: Any) -> np.ndarray:
    """Encoded image bytes (or their base64 text) -> (H, W) uint8 gray, converted like the contest did."""
    if isinstance(value, str):
        try:
            value = base64.b64decode(value, validate=True)
        except binascii.Error as err:
            raise ValueError(f"'image' is text but not base64 ({err})") from None
    if not isinstance(value, (bytes, bytearray)):
        raise ValueError(f"'image' must be bytes or base64 text, got {type(value).__name__}")
    return read_gray(bytes(value)).gray


def _encode_png(rgb: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


class RestorationModel(mlflow.pyfunc.PythonModel):
    """The pyfunc model object, built by `pyfunc_entry.py` when MLflow loads the model."""

    pipeline = None

    def load_context(self, context: Any) -> None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.pipeline = load_pipeline([context.artifacts["pipeline"]], device)

    def predict(self, context, model_input, params=None):  # no type hints: MLflow would read them as a schema
        import pandas as pd

        params = params or {}
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        grays = []
        for i, row in enumerate(frame.to_dict("records")):
            image, path = row.get("image"), row.get("path")
            try:
                if image is not None and not (isinstance(image, float) and np.isnan(image)):
                    grays.append(_decode(image))
                elif path:
                    grays.append(read_gray(Path(path)).gray)
                else:
                    raise ValueError("give 'image' (bytes or base64) or 'path'")
            except (ValueError, OSError) as err:
                raise ValueError(f"row {i}: {err}") from None
        batch = int(params.get("batch_size", 8))
        seed = int(params.get("seed", 0))
        settings = self.pipeline.defaults.but(truncation_psi=float(params.get("truncation_psi", INFERENCE_TRUNCATION)))
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


def signature() -> Any:
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
        "signature": signature(),
        "pip_requirements": pip_requirements(),
    }


def save_pipeline_model(sources: list[Path], path: Path) -> Path:
    """Write the pyfunc model to a local directory (no tracking server involved)."""
    with tempfile.TemporaryDirectory(prefix="restoration-export-") as tmp:
        weights = inference_weights(sources, Path(tmp) / "pipeline")
        mlflow.pyfunc.save_model(path=str(path), **_model_kwargs(weights))
    return path


def log_pipeline_model(
    sources: list[Path], *, tracking_uri: str, run_id: str, register_as: str | None = None, name: str = "model"
) -> str:
    """Log the pyfunc model into an existing run (optionally registering it); returns the model URI.

    MLflow's fluent API is the only way to log a pyfunc model into a run, so its process-wide state is set and
    left clean: the run is re-opened for this call only and ended again as FINISHED.
    """
    with tempfile.TemporaryDirectory(prefix="restoration-export-") as tmp, fluent_mlflow(tracking_uri):
        weights = inference_weights(sources, Path(tmp) / "pipeline")
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(name=name, registered_model_name=register_as, **_model_kwargs(weights))
    return info.model_uri
