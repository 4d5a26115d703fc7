"""The strict config loader: unknown keys, YAML scalar pitfalls, type conversion, Literal, round trips."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from restoration.config import (
    ConfigError,
    apply_overrides,
    dump_yaml,
    field_paths,
    flatten,
    load_config,
)


@dataclass
class Inner:
    lr: float = 1e-3
    steps: int = 10
    betas: tuple[float, float] = (0.0, 0.99)
    mode: Literal["hinge", "logistic"] = "logistic"
    note: str = "x"


@dataclass
class Outer:
    name: str = "run"
    enabled: bool = True
    path: Path = Path("runs")
    weights: Path | None = None
    sizes: list[int] = field(default_factory=lambda: [1, 2])
    extra: dict[str, float] = field(default_factory=dict)
    inner: Inner = field(default_factory=Inner)

    def __post_init__(self) -> None:
        if self.name == "forbidden":
            raise ValueError("name may not be 'forbidden'")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_defaults_without_file():
    assert load_config(Outer) == Outer()


def test_exponent_float_in_yaml_is_a_float(tmp_path):
    cfg = load_config(Outer, write(tmp_path, "inner:\n  lr: 1e-4\n"))
    assert isinstance(cfg.inner.lr, float)
    assert cfg.inner.lr == pytest.approx(1e-4)


def test_yaml_no_is_not_a_boolean(tmp_path):
    cfg = load_config(Outer, write(tmp_path, "inner:\n  note: no\n"))
    assert cfg.inner.note == "no"
    with pytest.raises(ConfigError, match=r"enabled.*true or false.*'no'"):
        load_config(Outer, write(tmp_path, "enabled: no\n"))


def test_unknown_yaml_key_names_file_key_and_suggestion(tmp_path):
    path = write(tmp_path, "inner:\n  stpes: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(Outer, path)
    message = str(err.value)
    assert str(path) in message
    assert "'inner.stpes'" in message
    assert "did you mean 'inner.steps'" in message


def test_unknown_override_suggests_nearest_dotted_key():
    with pytest.raises(ConfigError) as err:
        load_config(Outer, None, ["inner.lrr=1"])
    assert "'inner.lrr'" in str(err.value)
    assert "did you mean 'inner.lr'" in str(err.value)
    with pytest.raises(ConfigError, match="did you mean 'inner.lr'"):
        load_config(Outer, None, ["lr=1"])


def test_override_values_are_converted_by_field_type():
    cfg = load_config(Outer, None, ["inner.lr=3e-4", "inner.steps=1e3", "enabled=false", "path=/tmp/x", "sizes=[3,4]"])
    assert cfg.inner.lr == pytest.approx(3e-4)
    assert cfg.inner.steps == 1000
    assert isinstance(cfg.inner.steps, int)
    assert cfg.enabled is False
    assert cfg.path == Path("/tmp/x")
    assert cfg.sizes == [3, 4]


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("inner.steps=1.5", "expected an integer"),
        ("inner.steps=true", "boolean"),
        ("inner.lr=fast", "expected a number"),
        ("enabled=yes", "true or false"),
        ("inner.betas=[1]", "expected 2 items"),
        ("sizes=3", "expected a list"),
        ("name=true", "expected a string"),
        ("inner=3", "unknown key|mapping"),
        ("noequals", "a.b.c=value"),
    ],
)
def test_bad_values_are_rejected(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(Outer, None, [override])


def test_literal_choices_are_checked_with_suggestion(tmp_path):
    assert load_config(Outer, None, ["inner.mode=hinge"]).inner.mode == "hinge"
    with pytest.raises(ConfigError, match="did you mean 'hinge'"):
        load_config(Outer, write(tmp_path, "inner:\n  mode: hnge\n"))


def test_optional_and_dict_fields():
    cfg = load_config(Outer, None, ["weights=w.safetensors", "extra={a: 1, b: 2e-2}"])
    assert cfg.weights == Path("w.safetensors")
    assert cfg.extra == {"a": 1.0, "b": 0.02}
    assert load_config(Outer, None, ["weights=null"]).weights is None


def test_post_init_validation_becomes_config_error(tmp_path):
    with pytest.raises(ConfigError, match="forbidden"):
        load_config(Outer, None, ["name=forbidden"])
    with pytest.raises(ConfigError, match="forbidden"):
        load_config(Outer, write(tmp_path, "name: forbidden\n"))


def test_round_trip_dump_load(tmp_path):
    cfg = apply_overrides(Outer(), ["inner.lr=1e-10", "weights=a/b", "extra={k: 0.5}", "inner.note=no"])
    again = load_config(Outer, write(tmp_path, dump_yaml(cfg)))
    assert again == cfg


def test_flatten_gives_every_leaf_as_dotted_key():
    flat = flatten(Outer())
    assert set(flat) == set(field_paths(Outer))
    assert flat["inner.lr"] == pytest.approx(1e-3)
    assert flat["path"] == "runs"


def test_malformed_yaml_and_missing_file_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(Outer, write(tmp_path, "inner: [unclosed\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(Outer, tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(Outer, write(tmp_path, "- 1\n- 2\n"))


def test_train_cli_rejects_unknown_key_with_suggestion():
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "restoration.train",
            str(root / "configs" / "tiny.yaml"),
            "optim.lrr=1",
            "--print-config",
        ],
        capture_output=True,
        text=True,
        cwd=root,
    )
    assert result.returncode == 2
    assert "'optim.lrr'" in result.stderr
    assert "did you mean 'optim.lr'" in result.stderr


def test_every_shipped_config_loads():
    from restoration.recipe import TrainConfig

    for path in sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml")):
        load_config(TrainConfig, path)


def test_an_unknown_key_lists_its_section_not_every_key():
    from restoration.recipe import TrainConfig

    with pytest.raises(ConfigError) as err:
        load_config(TrainConfig, None, ["optim.lrr=1"])
    message = str(err.value)
    assert "did you mean 'optim.lr'?" in message
    assert "(keys under 'optim': lr, d_lr," in message
    assert "run.name" not in message
