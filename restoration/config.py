"""Strict, typed configuration: dataclass defaults -> one YAML file -> dotted CLI overrides.

Each component owns a small dataclass next to its code; a top-level dataclass composes them. This module
only loads, converts, checks and dumps. It is strict on purpose: a typo in a 12-hour cluster job should fail
in the first second with the file, the key and the nearest valid key, not silently train the default.

Two YAML pitfalls are handled here rather than left to every consumer:
- PyYAML follows YAML 1.1, which reads `1e-4` as a *string* and `no`/`off`/`yes`/`on` as booleans. We load with
  a resolver where only `true`/`false` are booleans and any decimal or exponent number is a float.
- Values are converted by the dataclass field's type (``int``, ``float``, ``bool``, ``str``, ``Path``,
  ``Literal[...]``, ``X | None``, ``list[X]``, ``tuple[X, ...]``, ``dict[str, X]`` and nested dataclasses), so a
  value of the wrong kind is an error naming where it came from.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import io
import re
import tokenize
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

T = TypeVar("T")

__all__ = [
    "ConfigError",
    "load_config",
    "read_yaml",
    "from_dict",
    "apply_overrides",
    "to_dict",
    "dump_yaml",
    "save_yaml",
    "flatten",
    "field_paths",
    "parse_value",
    "describe_fields",
    "format_fields",
]


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message names its source and what to do."""


# --------------------------------------------------------------------------------------------------------------
# YAML: YAML-1.2-like scalars (only true/false are booleans; 1e-4 is a float)
# --------------------------------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader whose implicit scalar resolution matches what people mean, not YAML 1.1."""


_StrictLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp) for tag, regexp in resolvers if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:float")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_FLOAT_RE = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass


def parse_value(text: str) -> Any:
    """Parse one override's right-hand side with the same scalar rules as the YAML file."""
    if text == "":
        return ""
    try:
        return _yaml_load(text)
    except yaml.YAMLError:
        return text


# --------------------------------------------------------------------------------------------------------------
# Type conversion
# --------------------------------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Convert `value` to type `tp`, raising ConfigError naming `where` when it does not fit."""
    if tp is Any:
        return value
    if _is_union(tp):
        return _to_union(value, tp, where)
    if value is None:
        raise ConfigError(f"{where}: null is not allowed here (expected {_type_name(tp)})")
    return _converter(tp)(value, tp, where)


Converter = Callable[[Any, Any, str], Any]  # (value, type, where) -> converted value


def _converter(tp: Any) -> Converter:
    """The converter for a non-union type: by its kind (Literal, dataclass, sequence, mapping), else by the type."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return _to_literal
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _to_dataclass
    if origin in (list, Sequence, tuple) or tp in (list, tuple):
        return _to_sequence
    if origin in (dict, Mapping) or tp is dict:
        return _to_dict
    scalar = _SCALARS.get(tp) if isinstance(tp, type) else None
    return scalar or _unsupported


def _to_union(value: Any, tp: Any, where: str) -> Any:
    """`X | Y | None`: null if allowed, else the first member type that accepts the value."""
    args = typing.get_args(tp)
    if value is None and type(None) in args:
        return None
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _convert(value, arg, where)
        except ConfigError:
            pass
    raise ConfigError(f"{where}: {value!r} is not a valid {_type_name(tp)}")


def _to_literal(value: Any, tp: Any, where: str) -> Any:
    """One of the choices, of the choice's own type (`1` does not match `"1"`); the message suggests the nearest."""
    choices = typing.get_args(tp)
    if value in choices and type(value) in {type(c) for c in choices}:
        return value
    hint = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
    raise ConfigError(f"{where}: {value!r} is not one of {list(choices)}{suggestion}")


def _to_dataclass(value: Any, tp: Any, where: str) -> Any:
    if dataclasses.is_dataclass(value) and isinstance(value, tp):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping for section {tp.__name__}, got {value!r}")
    return _from_mapping(tp, value, where + ":")


def _to_sequence(value: Any, tp: Any, where: str) -> Any:
    """`list[X]`, `Sequence[X]`, `tuple[X, ...]` (any length) or `tuple[X, Y]` (fixed length, typed per item)."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable) or isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a list, got {value!r}")
    items = list(value)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        if len(items) != len(args):
            raise ConfigError(f"{where}: expected {len(args)} items, got {len(items)}: {items!r}")
        return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(items, args)))
    item_tp = args[0] if args else Any
    converted = [_convert(v, item_tp, f"{where}[{i}]") for i, v in enumerate(items)]
    return tuple(converted) if (origin is tuple or tp is tuple) else converted


def _to_dict(value: Any, tp: Any, where: str) -> dict:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {value!r}")
    key_tp, val_tp = typing.get_args(tp) or (Any, Any)
    return {_convert(k, key_tp, where): _convert(v, val_tp, f"{where}.{k}") for k, v in value.items()}


def _to_bool(value: Any, tp: Any, where: str) -> bool:
    """A boolean, or the strings true/false in any case (never yes/no/on/off, never numbers)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ConfigError(f"{where}: expected true or false, got {value!r}")


def _to_int(value: Any, tp: Any, where: str) -> int:
    """An integer, or a float/string holding a whole number (`1e4`, `10_000`); never a boolean."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected an integer, got the boolean {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            number = float(value.replace("_", ""))
        except ValueError:
            number = None
        if number is not None and number.is_integer():
            return int(number)
    raise ConfigError(f"{where}: expected an integer, got {value!r}")


def _to_float(value: Any, tp: Any, where: str) -> float:
    """A number, or a string that parses as one (what YAML 1.1 left as `'1e-4'`); never a boolean."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got the boolean {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise ConfigError(f"{where}: expected a number, got {value!r}")


def _to_str(value: Any, tp: Any, where: str) -> str:
    """A string; numbers are accepted as their text (a run name `2024`), booleans are not."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return str(value)


def _to_path(value: Any, tp: Any, where: str) -> Path:
    if isinstance(value, str | Path):
        return Path(value)
    raise ConfigError(f"{where}: expected a path, got {value!r}")


def _unsupported(value: Any, tp: Any, where: str) -> Any:
    raise ConfigError(f"{where}: unsupported field type {_type_name(tp)}")


_SCALARS: dict[type, Converter] = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str, Path: _to_path}


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _nearest(key: str, valid: Sequence[str]) -> str | None:
    """The valid key closest to `key`, comparing whole dotted paths and their last parts."""

    def score(candidate: str) -> float:
        whole = difflib.SequenceMatcher(None, key, candidate).ratio()
        last = difflib.SequenceMatcher(None, key.rsplit(".", 1)[-1], candidate.rsplit(".", 1)[-1]).ratio()
        return max(whole, 0.9 * last)

    return max(valid, key=score) if valid else None


def _unknown_key(where: str, key: str, valid: Sequence[str]) -> ConfigError:
    """Names the nearest valid key and lists the keys of the section the unknown one is in (or the sections), not
    all ~100 keys on one line."""
    hint = _nearest(key, valid)
    suggestion = f"; did you mean {hint!r}?" if hint else ""
    section = key.rsplit(".", 1)[0] + "." if "." in key else ""
    siblings = [v.removeprefix(section) for v in valid if section and v.startswith(section)]
    if siblings:
        listing = f"keys under {section.rstrip('.')!r}: {', '.join(siblings)}"
    else:
        tops = list(dict.fromkeys(v.split(".", 1)[0] for v in valid))
        listing = f"top-level keys and sections: {', '.join(tops)}"
    return ConfigError(f"{where}: unknown key {key!r}{suggestion} ({listing})")


def _from_mapping(cls: type[T], data: Mapping[str, Any], source: str, prefix: str = "") -> T:
    """Build `cls` from `data`; errors read ``<source>: <dotted.key>: <problem>``."""
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            raise _unknown_key(source.rstrip(":"), dotted, [f"{prefix}{name}" for name in fields])
        tp = hints[key]
        if dataclasses.is_dataclass(tp) and isinstance(tp, type) and isinstance(value, Mapping):
            kwargs[key] = _from_mapping(tp, value, source, f"{dotted}.")
        else:
            kwargs[key] = _convert(value, tp, f"{source} {dotted}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{source} {prefix.rstrip('.') or cls.__name__}: {err}") from err


def from_dict(cls: type[T], data: Mapping[str, Any] | None, source: str = "<dict>") -> T:
    """Build `cls` from a nested mapping; `source` names where the mapping came from in errors."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, got {type(data).__name__}")
    return _from_mapping(cls, data, f"{source}:")


# --------------------------------------------------------------------------------------------------------------
# Overrides
# --------------------------------------------------------------------------------------------------------------


def field_paths(cls: type) -> list[str]:
    """Every dotted leaf key of a (nested) dataclass type, e.g. ``['optim.lr', 'data.batch_size', ...]``."""
    paths = []
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            paths.extend(f"{f.name}.{sub}" for sub in field_paths(tp))
        else:
            paths.append(f.name)
    return paths


def _apply_one(cfg: Any, override: str) -> Any:
    if "=" not in override:
        raise ConfigError(f"override {override!r}: expected the form a.b.c=value")
    dotted, raw = override.split("=", 1)
    dotted = dotted.strip()
    where = f"override {override!r}"
    parts = dotted.split(".")
    nodes = [cfg]
    for i, part in enumerate(parts):
        node = nodes[-1]
        names = {f.name for f in dataclasses.fields(node)}
        if part not in names:
            raise _unknown_key(where, dotted, field_paths(type(cfg)))
        if i < len(parts) - 1:
            child = getattr(node, part)
            if not dataclasses.is_dataclass(child):
                raise _unknown_key(where, dotted, field_paths(type(cfg)))
            nodes.append(child)
    leaf_owner = nodes[-1]
    tp = _hints(type(leaf_owner))[parts[-1]]
    value = _convert(parse_value(raw), tp, f"{where} ({dotted})")
    # rebuild bottom-up so __post_init__ validation runs on every changed dataclass
    for node, name in zip(reversed(nodes), reversed(parts)):
        try:
            value = dataclasses.replace(node, **{name: value})
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{where}: {err}") from err
    return value


def apply_overrides(cfg: T, overrides: Iterable[str]) -> T:
    """Apply ``a.b.c=value`` strings in order; later ones win."""
    for override in overrides:
        cfg = _apply_one(cfg, override)
    return cfg


# --------------------------------------------------------------------------------------------------------------
# Load and dump
# --------------------------------------------------------------------------------------------------------------


def read_yaml(path: str | Path) -> Any:
    """The YAML file at `path` as plain data (the same scalar rules as `load_config`); a file that cannot be read,
    is not UTF-8 or is not YAML raises `ConfigError` naming it."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config file ({err.strerror or err})") from err
    except UnicodeDecodeError as err:
        line = err.object[: err.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: not UTF-8 (byte 0x{err.object[err.start]:02x} on line {line}); save the file as UTF-8"
        ) from err
    try:
        return _yaml_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err


def load_config(cls: type[T], path: str | Path | None = None, overrides: Iterable[str] = ()) -> T:
    """Defaults of `cls`, then the YAML file at `path` (if any), then the dotted `overrides`."""
    data: Any = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        data = read_yaml(path)
    cfg = from_dict(cls, data, source)
    return apply_overrides(cfg, overrides)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def to_dict(cfg: Any) -> dict[str, Any]:
    """Nested plain-Python dict (paths as strings, tuples as lists), ready for YAML or JSON."""
    return _plain(cfg)


def dump_yaml(cfg: Any) -> str:
    """The resolved config as YAML that `load_config` reads back to an equal object."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=False, width=120)


def save_yaml(cfg: Any, path: str | Path) -> Path:
    """Write the resolved config atomically (temp file + rename) so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dump_yaml(cfg))
    tmp.replace(path)
    return path


def flatten(cfg: Any) -> dict[str, Any]:
    """Flat ``{'a.b.c': value}`` view of the resolved config, e.g. for MLflow params (empty mappings stay leaves)."""

    def walk(node: Mapping[str, Any], prefix: str) -> dict[str, Any]:
        flat: dict[str, Any] = {}
        for key, value in node.items():
            if isinstance(value, Mapping) and value:
                flat.update(walk(value, f"{prefix}{key}."))
            else:
                flat[f"{prefix}{key}"] = value
        return flat

    return walk(to_dict(cfg), "")


# --------------------------------------------------------------------------------------------------------------
# Help
# --------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FieldHelp:
    """One settable key of a config: what `--help-config` prints."""

    key: str
    type: str
    default: Any
    comment: str


def _field_comments(cls: type) -> dict[str, str]:
    """The comment written after (or on the lines right above) each field in `cls`'s source: the documentation a
    reader of the code sees, shown to users too so that it cannot drift from a second copy."""
    try:
        lines, _ = inspect.getsourcelines(cls)
    except (OSError, TypeError):
        return {}
    comments: dict[str, str] = {}
    above: list[str] = []
    for line in lines[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("# ").strip())
            continue
        match = re.match(r"\s+(\w+)\s*:[^=]*(?:=.*)?$", line)
        if match and not stripped.startswith(("def ", "@")):
            trailing = ""
            try:
                tokens = list(tokenize.generate_tokens(io.StringIO(stripped).readline))
                trailing = next((t.string.lstrip("# ").strip() for t in tokens if t.type == tokenize.COMMENT), "")
            except (tokenize.TokenError, SyntaxError):
                pass
            text = trailing or " ".join(above)  # a comment block above may head a group of fields: second choice
            if text and match.group(1) not in comments:
                comments[match.group(1)] = text
        above = []
    return comments


def describe_fields(cls: type, prefix: str = "") -> list[FieldHelp]:
    """Every dotted leaf key of the dataclass `cls` with its type, default and source comment, in field order."""
    out: list[FieldHelp] = []
    hints = _hints(cls)
    comments = _field_comments(cls)
    defaults = cls()
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            out.extend(describe_fields(tp, f"{prefix}{f.name}."))
        else:
            value = _plain(getattr(defaults, f.name))
            kind = _type_name(tp).replace("pathlib.", "")
            out.append(FieldHelp(f"{prefix}{f.name}", kind, value, comments.get(f.name, "")))
    return out


def format_fields(fields: Sequence[FieldHelp]) -> str:
    """`key  type  default  # comment`, one key a line, sections separated by a blank line."""
    width = max(len(f.key) for f in fields)
    type_width = min(40, max(len(f.type) for f in fields))
    rows, section = [], None
    for f in fields:
        head = f.key.split(".", 1)[0] if "." in f.key else ""
        if section is not None and head != section:
            rows.append("")
        section = head
        default = yaml.safe_dump(f.default, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()
        line = f"{f.key:<{width}}  {f.type:<{type_width}}  = {default}"
        rows.append(f"{line}  # {f.comment}" if f.comment else line)
    return "\n".join(rows) + "\n"
