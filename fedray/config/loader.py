"""Strict YAML loading: presets, files and dotted ``--set`` overrides into ``ExperimentConfig``.

Every unknown key or wrong type raises :class:`ConfigError` naming the full dotted key.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from fedray.config.checkpoint import resolve_checkpoints
from fedray.config.schema import ConfigError, ExperimentConfig


def preset_names() -> list[str]:
    """Names of the presets packaged in ``fedray/config/presets``."""
    files = resources.files("fedray.config").joinpath("presets").iterdir()
    return sorted(f.name[:-5] for f in files if f.name.endswith(".yaml"))


class DuplicateKeyError(yaml.YAMLError):
    """A mapping gives the same key twice."""


class StrictLoader(yaml.SafeLoader):
    """YAML 1.1 safe loading with two fixes: a key given twice in one mapping is an error (PyYAML keeps
    the last silently), and scientific notation without a dot (``1e-3``, ``5E+2``) is a float, as in
    YAML 1.2 (YAML 1.1 reads it as a string)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    raise DuplicateKeyError(f"duplicate key {key!r} on lines {seen[key] + 1} and "
                                            f"{key_node.start_mark.line + 1}; a key may appear once per mapping")
                seen[key] = key_node.start_mark.line
            except TypeError:  # an unhashable key: construct_mapping reports it
                pass
        return super().construct_mapping(node, deep)


StrictLoader.add_implicit_resolver(  # YAML 1.2 floats with any exponent: 1e-3, 1.0e3, -2E5, .5e2
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"))


def parse_yaml(text: str, where: str) -> Any:
    """Parse YAML with :class:`StrictLoader`; a syntax error or duplicate key is a ConfigError naming ``where``."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - StrictLoader is a SafeLoader
    except DuplicateKeyError as err:
        raise ConfigError(f"{where}: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{where}: not valid YAML: {err}") from None


def _read_yaml(text: str, where: str) -> dict[str, Any]:
    data = parse_yaml(text, where)
    if data is None:  # an empty file silently running the dataclass defaults would look like a real run
        raise ConfigError(f"{where}: is empty; give at least 'preset: NAME' or the keys to set")
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _read_file(path: str) -> str:
    """A config file's text, with errors that name the file."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"config file {path}: is a directory, not a YAML file")
    if not p.is_file():
        hint = f"; '{path}' is a packaged preset: use --preset {path}" if path in preset_names() else ""
        raise ConfigError(f"config file {path}: not found{hint}")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {path}: not UTF-8 text (byte {err.start}: {err.reason})") from None
    except OSError as err:
        raise ConfigError(f"config file {path}: cannot read it ({err.strerror})") from None


def load_raw(path: str | None = None, preset: str | None = None) -> dict[str, Any]:
    """Read a config file and/or preset into a plain dict, resolving ``preset:`` chains."""
    raw: dict[str, Any] = {}
    if path is not None:
        raw = _read_yaml(_read_file(path), f"config file {path}")
        preset = raw.pop("preset", preset) if preset is None else preset
    if preset is None:
        return raw
    if preset not in preset_names():
        raise ConfigError(f"unknown preset {preset!r}; available: {', '.join(preset_names())}")
    text = resources.files("fedray.config").joinpath(f"presets/{preset}.yaml").read_text()
    base = _read_yaml(text, f"preset {preset}")
    parent = base.pop("preset", None)
    if parent is not None:
        base = merge(load_raw(preset=parent), base)
    return merge(base, raw)


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``over`` into a copy of ``base`` (mappings merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    if isinstance(over.get("rounds"), list) and "total_rounds" not in over and "total_rounds" in out:
        out["total_rounds"] = None  # a rounds list given over a base fixes its own total: the base's is moot
    return out


def _leaf_paths(tp: Any = ExperimentConfig, prefix: str = "") -> list[str]:
    """Dotted paths of every field under the dataclass tree (not into mappings such as towers)."""
    out = []
    for f in dataclasses.fields(tp):
        path = _join(prefix, f.name)
        hint = typing.get_type_hints(tp)[f.name]
        if dataclasses.is_dataclass(hint):
            out += _leaf_paths(hint, path)
        elif typing.get_origin(hint) is dict and dataclasses.is_dataclass(typing.get_args(hint)[1]):
            out += _leaf_paths(typing.get_args(hint)[1], f"{path}.<name>")  # candidates only, never resolved
        else:
            out.append(path)
    return out


def resolve_key(key: str) -> str:
    """A full dotted key, or a unique suffix of one: ``method`` -> ``train.method``, ``partition.beta`` -> ``data.partition.beta``."""
    top = {f.name for f in dataclasses.fields(ExperimentConfig)}
    if key.split(".")[0] in top:
        return key
    matches = [p for p in _leaf_paths() if p.endswith("." + key)]
    if len(matches) == 1 and "<name>" not in matches[0]:
        return matches[0]
    if matches:
        raise ConfigError(f"override key '{key}' is ambiguous or needs a tower name; use one of: {', '.join(matches)}")
    raise ConfigError(f"config key '{key}': unknown key; top-level sections are {', '.join(sorted(top))}")


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (or a unique suffix: ``method=lw``); values are parsed as YAML."""
    check_overrides(overrides)
    out = copy.deepcopy(raw)
    for item in overrides:
        key, _, text = item.partition("=")
        node = out
        parts = resolve_key(key.strip()).split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: '{part}' is not a section")
            node = child
        node[parts[-1]] = parse_yaml(text, f"override {item!r}") if text.strip() else None
    given = {resolve_key(item.partition("=")[0].strip()) for item in overrides}
    train = out.get("train")
    if "train.rounds" in given and "train.total_rounds" not in given and isinstance(train, dict) \
            and isinstance(train.get("rounds"), list):
        train["total_rounds"] = None  # --set train.rounds=[...] fixes its own total: the config's is moot
    return out


def check_overrides(overrides: list[str]) -> None:
    """Every override has the form KEY=VALUE (checked before any file is read: ``--set a.b c`` would
    otherwise surface as a missing config file ``c``)."""
    for item in overrides:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. train.method=lw")


def build(raw: dict[str, Any]) -> ExperimentConfig:
    """Turn a plain dict into a validated ``ExperimentConfig`` (strict: unknown keys are errors).

    Towers with a ``checkpoint`` take their architecture from it (see ``fedray.config.checkpoint``).
    """
    return _convert(ExperimentConfig, resolve_checkpoints(raw), "")


def load_config(path: str | None = None, preset: str | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load a config from a file and/or preset plus overrides."""
    if path is None and preset is None:
        preset = "default"
    check_overrides(overrides or [])
    return build(apply_overrides(load_raw(path, preset), overrides or []))


def to_dict(cfg: Any) -> Any:
    """A dataclass tree as plain YAML-ready values."""
    return dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else cfg


def dump_yaml(cfg: ExperimentConfig) -> str:
    """The resolved config as YAML that ``load_config(path)`` reads back to an equal config."""
    data = to_dict(cfg)
    storage = data.get("data", {}).get("storage") or {}
    for secret in ("key", "secret"):  # credentials never reach a file; loading falls back to the env vars
        if secret in storage:
            storage[secret] = None
    return yaml.safe_dump(data, sort_keys=False)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{path or '<root>'}': expected a mapping, got {value!r}")
        hints = typing.get_type_hints(tp)
        names = {f.name for f in dataclasses.fields(tp) if f.init}
        unknown = sorted(set(value) - names)
        if unknown:
            raise ConfigError(
                f"config key '{_join(path, str(unknown[0]))}': unknown key; valid keys here: {', '.join(sorted(names))}"
            )
        kwargs = {k: _convert(hints[k], v, _join(path, k)) for k, v in value.items()}
        try:
            return tp(**kwargs)
        except ConfigError as err:
            msg = str(err)
            if path and msg.startswith("config key '"):  # re-root a nested key: 'beta' -> 'data.partition.beta'
                msg = f"config key '{path}." + msg[len("config key '"):]
            raise ConfigError(msg) from None
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        mapped = [a for a in args if dataclasses.is_dataclass(a)]
        if isinstance(value, dict) and len(mapped) == 1:  # a mapping is that section: keep its named errors
            return _convert(mapped[0], value, path)
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, path)
            except ConfigError as err:
                errors.append(err)
        raise ConfigError(f"config key '{path}': {value!r} does not match {_type_name(tp)}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"config key '{path}': expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{path}': expected a mapping, got {value!r}")
        _, item = typing.get_args(tp)
        return {str(k): _convert(item, v, _join(path, str(k))) for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{path}': expected a number, got {value!r}")
        try:
            number = float(value)
        except OverflowError:  # an int beyond float range
            number = math.inf
        if not math.isfinite(number):  # .inf / .nan pass every `> 0` check and then hang or poison a run
            raise ConfigError(f"config key '{path}': must be a finite number, got {value!r}")
        return number
    if tp in (int, str, bool):
        if type(value) is not tp:
            raise ConfigError(f"config key '{path}': expected {tp.__name__}, got {value!r}")
        return value
    if tp is Any:
        return value
    raise TypeError(f"unsupported config type {tp!r} at {path}")


def _type_name(tp: Any) -> str:
    return str(tp).replace("typing.", "")
