"""Config objects: frozen dataclasses loaded from TOML with dotted overrides.

Configs are read only at the entry points (CLI, benchmarks, API helpers), which build the objects
with explicit keyword arguments. Unknown keys are errors, so a typo never silently does nothing.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import tomllib

from outpool.errors import ConfigError

T = TypeVar("T")


def from_dict(cls: type[T], data: Mapping[str, Any], *, where: str = "") -> T:
    """Build the dataclass ``cls`` from a (nested) mapping; unknown keys raise ``ConfigError``."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(sorted(where + k for k in unknown))}; "
            f"valid: {', '.join(where + k for k in fields)}"
        )
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        factory = fields[name].default_factory
        if isinstance(value, Mapping) and factory is not dataclasses.MISSING:
            default = factory()  # a table sets its keys on the field's default, not the class's
            if dataclasses.is_dataclass(default) and not isinstance(default, type):
                value = _merged(to_dict(default), value)
        kwargs[name] = _coerce(hints[name], value, where + name)
    return cls(**kwargs)


def _merged(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        nested = isinstance(value, Mapping) and isinstance(out.get(key), dict)
        out[key] = _merged(out[key], value) if nested else value
    return out


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key {key} must be a table, got {value!r}")
        return from_dict(tp, value, where=key + ".")
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, key)
    if origin is tuple:
        if not isinstance(value, Sequence) or isinstance(value, str):
            raise ConfigError(f"config key {key} must be a list, got {value!r}")
        items = typing.get_args(tp)
        item = items[0] if items else Any
        return tuple(_coerce(item, v, key) for v in value)
    if tp is float:
        if value in ("inf", "-inf"):  # how strict JSON files hold an infinite number
            return float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"config key {key} must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key {key} must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key} must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key {key} must be a string, got {value!r}")
        return value
    return value


def to_dict(config: Any) -> dict[str, Any]:
    """The config as plain data (tuples become lists), ready for TOML or JSON."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(config))


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=VALUE`` where VALUE is a TOML value (bare words are strings)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key.path=value")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip().split("."), value


def load(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Load ``cls`` from an optional TOML file, then apply ``key.path=value`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    base = to_dict(from_dict(cls, data))  # validates the file's keys
    for text in overrides:
        keys, value = parse_override(text)
        node = base
        for k in keys[:-1]:
            if not isinstance(node.get(k), dict):
                raise ConfigError(f"override '{text}': '{k}' is not a table of the config")
            node = node[k]
        if keys[-1] not in node:
            valid = ", ".join(node)
            raise ConfigError(f"override '{text}': unknown key '{keys[-1]}'; valid: {valid}")
        node[keys[-1]] = value
    return from_dict(cls, base)
