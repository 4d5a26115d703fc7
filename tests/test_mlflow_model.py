"""The pipeline as an MLflow pyfunc model: saved, logged, registered, loaded and predicting; its requirements, its
answers to bad requests, its card; and the export CLI."""

from __future__ import annotations

import ast
import base64
import io
import json
import shutil
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import make_contest_folder
from mlflow.exceptions import MlflowException
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from PIL import Image

from restoration.export import main as export_main
from restoration.inference import INPAINT_MODES, InferenceSettings
from restoration.mlflow_model import CARD_FILE, save_pipeline_model
from restoration.pipeline import load_pipeline
from restoration.tracking import fluent_mlflow
from restoration.weights import record_inference


def decode(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


@pytest.fixture(scope="module")
def saved_model(tiny_export, tmp_path_factory) -> Path:
    return save_pipeline_model([tiny_export], tmp_path_factory.mktemp("mlmodel") / "model")


@pytest.fixture(scope="module")
def loaded_model(saved_model):
    return mlflow.pyfunc.load_model(str(saved_model))


def test_saved_model_predicts_like_the_pipeline_from_bytes_base64_and_paths(saved_model, tiny_export, tmp_path):
    root = make_contest_folder(tmp_path / "c", count=3)
    files = sorted((root / "test_input").glob("*.png"))
    model = mlflow.pyfunc.load_model(str(saved_model))
    assert {c.name for c in model.metadata.get_input_schema().inputs} == {"image", "path"}
    frame = pd.DataFrame(
        {
            "image": [files[0].read_bytes(), base64.b64encode(files[1].read_bytes()).decode(), None],
            "path": [None, None, str(files[2])],
        }
    )
    out = model.predict(frame, params={"seed": 0, "batch_size": 8})
    assert list(out.columns) == ["image", "width", "height", "lost_fraction", "mask_source"]
    assert list(out["mask_source"]) == ["exact"] * 3
    expected = load_pipeline([tiny_export]).restore([np.asarray(Image.open(f)) for f in files], seed=0)
    for b64, result in zip(out["image"], expected):
        assert np.array_equal(decode(b64), result.rgb)
    with pytest.raises(MlflowException, match="row 0"):
        model.predict(pd.DataFrame({"image": [b"not an image"]}))


# every inference setting a request can pick (`InferenceSettings` fields that are params of the model)
SETTINGS_A_USER_PICKS = [
    *({"inpaint_mode": mode} for mode in INPAINT_MODES),
    {"color_mode": "full", "chroma_scale": 0.5, "chroma_floor": 0.02, "chroma_flip": True, "truncation_psi": 1.0},
]
PROBE = """
import json, sys
import mlflow.pyfunc, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
for params in json.loads(sys.argv[3]):
    assert len(model.predict(pd.DataFrame({"path": [sys.argv[2]]}), params=params)) == 1
ours = [m for name, m in list(sys.modules.items()) if name.split(".")[0] == "restoration"]
print(json.dumps(sorted({m.__file__ for m in ours if getattr(m, "__file__", None)})))
"""


def _is_optional(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """An import inside `try: ... except ImportError` (or ModuleNotFoundError): the code runs without it."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.Try) and any(
            h.type is not None and {"ImportError", "ModuleNotFoundError"} & {n.id for n in ast.walk(h.type)
                                                                             if isinstance(n, ast.Name)}
            for h in node.handlers
        ):  # fmt: skip
            return True
    return False


def third_party_imports(files: list[Path]) -> dict[str, bool]:
    """Top-level names of the non-stdlib, non-`restoration` modules that `files` import anywhere (module level or
    inside a function), each with whether some import of it is required (not guarded by `except ImportError`)."""
    found: dict[str, bool] = {}
    for path in files:
        tree = ast.parse(Path(path).read_text())
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for top in {name.split(".")[0] for name in names} - set(sys.stdlib_module_names) - {"restoration"}:
                found[top] = found.get(top, False) or not _is_optional(node, parents)
    return found


def test_the_model_requirements_cover_every_third_party_import_of_the_served_code(saved_model, tmp_path):
    """Derived, not listed: a subprocess loads the saved model as a server would (`mlflow.pyfunc.load_model`) and
    predicts one image with every inference setting a request can pick (each inpaint mode, color mode, chroma scale
    and flip, truncation), then reports the files of the `restoration` modules that were loaded. Every `import` in
    those files, also the ones inside functions that no request reached, is resolved to its top-level module, the
    stdlib and `restoration` are dropped, and the rest is mapped to its distributions
    (`importlib.metadata.packages_distributions`); one of them must be in the model's `requirements.txt`.

    Why files and their import statements rather than the site-packages modules in `sys.modules`: the latter holds
    the whole dependency tree of torch and mlflow (which pip installs by itself) and misses a lazy import of a branch
    the requests did not take. Why the loaded files rather than every file of the package: the model ships the
    whole package, but training code (webdataset, tqdm) is never imported by serving. An import guarded by
    `except ImportError` is optional: OpenCV (`anchors._cv2`) is not a requirement, since every use of it falls back
    to scikit-image and the served fill is the biharmonic one."""
    root = make_contest_folder(tmp_path / "c", count=1)
    image = root / "test_input" / "TEST_000.png"
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(saved_model), str(image), json.dumps(SETTINGS_A_USER_PICKS)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = [Path(f) for f in json.loads(proc.stdout.strip().splitlines()[-1])]
    assert {"anchors.py", "pipeline.py", "mlflow_model.py"} <= {f.name for f in files}
    imports = third_party_imports([*files, saved_model / "pyfunc_entry.py"])
    required = sorted(top for top, needed in imports.items() if needed)
    assert {"torch", "mlflow", "skimage", "PIL"} <= set(required)  # the walk sees what the fill mode imports
    assert imports.get("cv2") is False  # seen, and optional
    listed = {canonicalize_name(Requirement(line).name) for line in (saved_model / "requirements.txt").read_text()
              .splitlines() if line.strip() and not line.startswith("#")}  # fmt: skip
    where = packages_distributions()
    missing = {top: where.get(top) for top in required
               if not {canonicalize_name(d) for d in where.get(top, [])} & listed}  # fmt: skip
    assert not missing, f"imported by the served code but not in the model's requirements.txt: {missing}"


def test_a_request_picks_the_inference_settings_and_defaults_to_the_recorded_ones(tiny_export, loaded_model, tmp_path):
    """The params change the settings of one request only; the signature's defaults are the model's recorded
    settings, so a request without params restores like `restoration-predict` with the model's defaults."""
    root = make_contest_folder(tmp_path / "c", count=1)
    gray = np.asarray(Image.open(root / "test_input" / "TEST_000.png"))
    frame = pd.DataFrame({"path": [str(root / "test_input" / "TEST_000.png")]})
    pipeline = load_pipeline([tiny_export])
    out = loaded_model.predict(frame, params={"inpaint_mode": "fill", "chroma_scale": 0.5})
    expected = pipeline.restore([gray], settings=InferenceSettings(inpaint_mode="fill", chroma_scale=0.5), keys=["0"])
    assert np.array_equal(decode(out["image"][0]), expected[0].rgb)
    default = loaded_model.predict(frame)
    assert np.array_equal(decode(default["image"][0]), pipeline.restore([gray], keys=["0"])[0].rgb)

    export = shutil.copytree(tiny_export, tmp_path / "final")
    record_inference(export, inpaint_mode="fill", chroma_scale=0.75)
    model = save_pipeline_model([export], tmp_path / "model")
    params = {p.name: p.default for p in mlflow.models.get_model_info(str(model)).signature.params.params}
    assert (params["inpaint_mode"], params["chroma_scale"], params["color_mode"]) == ("fill", 0.75, "resize")


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ({"picture": ["x"]}, "no column 'image' or 'path' in the request"),
        ({"path": pd.Series([], dtype=object)}, "no rows in the request"),
        ({"path": ["/nonexistent/a.png"]}, "row 0: path '/nonexistent/a.png': file not found"),
        ({"image": [b"not an image"]}, "row 0: image: not a readable image (UnidentifiedImageError"),
        ({"image": [None, "@@"], "path": [None, None]}, "2 of 2 rows cannot be restored: row 0: neither 'image' nor "
                                                        "'path' given; row 1: image: text that is not base64"),
    ],
)  # fmt: skip
def test_a_bad_request_is_refused_with_the_reason_as_an_invalid_parameter(loaded_model, frame, expected):
    """`INVALID_PARAMETER_VALUE` is what the scoring server answers with HTTP 400 and the message."""
    with pytest.raises(MlflowException) as caught:
        loaded_model.predict(pd.DataFrame(frame))
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    assert expected in caught.value.message


def test_a_param_out_of_range_is_refused_with_the_reason(loaded_model, tmp_path):
    root = make_contest_folder(tmp_path / "c", count=1)
    frame = pd.DataFrame({"path": [str(root / "test_input" / "TEST_000.png")]})
    for params, expected in (({"inpaint_mode": "paint"}, "params: inpaint mode 'paint': expected one of"),
                             ({"chroma_scale": 4.0}, "params: chroma scale 4.0: expected a number in [0, 3]"),
                             ({"chroma_floor": 0.5}, "params: chroma floor 0.5: expected a number in [0, 0.25]"),
                             ({"batch_size": 0}, "params: batch_size 0: expected 1 or more")):  # fmt: skip
        with pytest.raises(MlflowException) as caught:
            loaded_model.predict(frame, params=params)
        assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
        assert expected in caught.value.message


def test_the_saved_model_carries_its_card(saved_model):
    card = (saved_model / CARD_FILE).read_text()
    assert card.startswith("# Restoration model")
    assert "`mat_G` (inpainter)" in card
    assert "`color_G` (colorizer)" in card


def test_mlflow_models_predict_cli_on_a_csv_of_paths(saved_model, tmp_path):
    root = make_contest_folder(tmp_path / "c", count=2)
    listing = tmp_path / "images.csv"
    listing.write_text("path\n" + "".join(f"{p}\n" for p in sorted((root / "test_input").glob("*.png"))))
    out = tmp_path / "out.json"
    cmd = [sys.executable, "-m", "mlflow", "models", "predict", "-m", str(saved_model), "-i", str(listing),
           "-t", "csv", "--env-manager", "local", "-o", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    predictions = json.loads(out.read_text())["predictions"]
    assert len(predictions) == 2
    assert decode(predictions[0]["image"]).shape == (64, 64, 3)


def test_export_logs_registers_and_the_model_loads_by_name(tiny_export, tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    rc = export_main(["--model", str(tiny_export), "--tracking-uri", uri, "--experiment", "exports",
                      "--register", "tiny-pipeline"])  # fmt: skip
    assert rc == 0
    assert "logged the pyfunc model, with its MODEL_CARD.md, into run" in capsys.readouterr().out
    with fluent_mlflow(uri):
        model = mlflow.pyfunc.load_model("models:/tiny-pipeline/1", dst_path=str(tmp_path))  # not /tmp
        card = Path(mlflow.artifacts.download_artifacts(f"models:/tiny-pipeline/1/{CARD_FILE}", dst_path=str(tmp_path)))
        client = mlflow.MlflowClient()
        logged = client.get_logged_model(mlflow.models.get_model_info("models:/tiny-pipeline/1").model_id)
        descriptions = {
            "registered model": client.get_registered_model("tiny-pipeline").description,
            "model version": client.get_model_version("tiny-pipeline", "1").description,
            "logged model": logged.tags.get("mlflow.note.content"),
        }
    root = make_contest_folder(tmp_path / "c", count=1)
    out = model.predict(pd.DataFrame({"path": [str(root / "test_input" / "TEST_000.png")]}))
    assert decode(out["image"][0]).shape == (64, 64, 3)
    assert card.read_text().startswith("# Restoration model")
    for where, text in descriptions.items():
        assert text == card.read_text(), where


def test_export_refuses_an_existing_out_dir_and_a_directory_without_weights(tiny_export, tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    assert export_main(["--model", str(tiny_export), "--out", str(tmp_path / "taken")]) == 2
    assert "already exists" in capsys.readouterr().err
    detector_only = tmp_path / "det"
    from conftest import write_tiny_export

    write_tiny_export(detector_only, ("detector",))
    assert export_main(["--model", str(detector_only), "--out", str(tmp_path / "m")]) == 2
    assert "no inpainter, colorizer or baseline" in capsys.readouterr().err
