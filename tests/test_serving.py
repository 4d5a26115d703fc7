"""The logged and registered model served by `mlflow models serve` from its tracking store, over HTTP: an image is
restored, a bad request gets a 4xx whose message is the reason."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import free_port, make_contest_folder
from mlflow.tracking import MlflowClient
from PIL import Image

from restoration.mlflow_model import log_pipeline_model

START_TIMEOUT_S = 180.0  # a cold start imports torch and mlflow and loads the model: seconds idle, a minute loaded


def post(url: str, body: dict) -> tuple[int, dict]:
    """(HTTP status, JSON answer) of a POST, also for a 4xx/5xx."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def wait_until_up(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=5) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1.0)
    pytest.fail(f"no answer on {url}/ping after {START_TIMEOUT_S:.0f} s:\n{log.read_text()[-3000:]}")


def stop(server: subprocess.Popen) -> None:
    """End the server's process group (the CLI execs uvicorn in a child shell), then make sure it is gone."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=20)


@pytest.mark.slow
def test_the_served_model_restores_an_image_and_refuses_bad_requests_with_the_reason(tiny_export, tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(store)
    experiment = client.create_experiment("serving", artifact_location=(tmp_path / "mlruns").as_uri())
    run_id = client.create_run(experiment).info.run_id
    log_pipeline_model([tiny_export], tracking_uri=store, run_id=run_id, register_as="served")
    image = make_contest_folder(tmp_path / "c", count=1) / "test_input" / "TEST_000.png"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # the venv's bin first: the CLI runs `uvicorn` by name, as it would in an activated environment
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "MLFLOW_TRACKING_URI": store}  # fmt: skip
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/served/1", "--env-manager", "local",
           "-h", "127.0.0.1", "-p", str(port)]  # fmt: skip
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        server = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_until_up(url, server, log)
        b64 = base64.b64encode(image.read_bytes()).decode()
        status, answer = post(
            f"{url}/invocations", {"dataframe_records": [{"image": b64}], "params": {"inpaint_mode": "fill"}}
        )
        assert status == 200, answer
        (row,) = answer["predictions"]
        restored = np.asarray(Image.open(io.BytesIO(base64.b64decode(row["image"]))))
        assert restored.shape == (64, 64, 3)
        assert (row["width"], row["height"], row["mask_source"]) == (64, 64, "exact")

        status, answer = post(f"{url}/invocations", {"dataframe_records": [{"picture": "x"}]})
        assert 400 <= status < 500, answer
        assert "no column 'image' or 'path' in the request" in answer["message"]

        status, answer = post(f"{url}/invocations", {"dataframe_records": [{"path": "/nonexistent.png"}]})
        assert 400 <= status < 500, answer
        assert "row 0: path '/nonexistent.png': file not found" in answer["message"]
    finally:
        stop(server)
