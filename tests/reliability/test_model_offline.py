"""Loading a model never reaches the network: an encoder name that timm would download (a tampered pipeline.json) is
refused with one line naming the file and the field."""

from __future__ import annotations

import json
import socket

import pytest
import timm.models._factory
from conftest import make_contest_folder, write_tiny_export

from restoration import predict
from restoration.models.unet import create_encoder
from restoration.weights import ModelSourceError, build_network


@pytest.fixture(scope="module")
def colorizer_export(tmp_path_factory):
    return write_tiny_export(tmp_path_factory.mktemp("export") / "final", networks=("color_G",))


@pytest.fixture
def no_network(monkeypatch) -> list:
    """Every way out (sockets, timm's hub config download) records the attempt and fails at once."""
    attempts: list = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("the network is off in this test")

    for name in ("connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(timm.models._factory, "load_model_config_from_hf", refuse)
    return attempts


@pytest.mark.parametrize(
    "encoder", ["hf-hub:some-org/some-net", "hf_hub:some-org/some-net", "https://example.com/net.pth",
                "timm/resnet18.a1_in1k", "local-dir:/tmp/net", "no_such_net_anywhere"],
)  # fmt: skip
def test_a_tampered_encoder_name_is_refused_without_a_network_attempt(
    colorizer_export, tmp_path, no_network, capsys, encoder
):
    model = tmp_path / "final"
    model.mkdir()
    for path in colorizer_export.iterdir():
        (model / path.name).write_bytes(path.read_bytes())
    meta = json.loads((model / "pipeline.json").read_text())
    meta["colorizer"]["encoder"] = encoder
    (model / "pipeline.json").write_text(json.dumps(meta))
    root = make_contest_folder(tmp_path / "c", count=1, size=16)
    capsys.readouterr()

    rc = predict.main(["--model", str(model), "--input", str(root / "test.csv"), "--out", str(tmp_path / "p")])

    assert rc == 2
    assert no_network == []
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: {model / 'pipeline.json'}: colorizer.encoder: ")
    assert repr(encoder) in err
    assert "Traceback" not in err


def test_build_network_and_create_encoder_refuse_hub_names_themselves(no_network):
    with pytest.raises(ModelSourceError, match=r"^x/pipeline\.json: detector\.encoder: 'hf-hub:a/b' is not a plain"):
        build_network("detector", {"detector": {"encoder": "hf-hub:a/b"}}, "x/pipeline.json")
    with pytest.raises(ValueError, match="is not a plain timm architecture name"):
        create_encoder("hf-hub:a/b", 1, None)
    assert no_network == []


def test_plain_timm_names_are_accepted():
    from restoration.models.unet import encoder_name_problem

    assert encoder_name_problem("resnet18") is None
    assert encoder_name_problem("resnet34.a1_in1k") is None  # a pretrained tag: built offline with pretrained=False
