"""Typed configs from YAML: frozen dataclasses, unknown keys rejected, `key=value` overrides.

`load(path, Schema, overrides)` reads YAML with `yaml.safe_load`, applies dotted overrides
(`optim.learning_rate=2e-5`, values parsed as YAML), and builds the dataclass tree, checking types.
Errors name the file and the full key (`configs/x.yaml: optim.lr: unknown key; did you mean ...`).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from xtjax.errors import ConfigError
from xtjax.io_utils import as_path


class BadValue(ValueError):
  """A config value out of range, raised by a dataclass's `__post_init__`; names its field."""

  def __init__(self, key: str, msg: str):
    super().__init__(f"{key}: {msg}")
    self.key, self.msg = key, msg


def check_min(cfg, minimum: float, *names: str, strict: bool = False) -> None:
  """Raises BadValue for the first field of `cfg` in `names` below `minimum` (or equal, if `strict`).
  None means "unset" and passes."""
  for name in names:
    value = getattr(cfg, name)
    if value is not None and (value < minimum or (strict and value == minimum)):
      raise BadValue(name, f"must be {'>' if strict else '>='} {minimum}, got {value!r}")


def _fail(where: str, key: str, msg: str):
  raise ConfigError(f"{where}: {key or '<root>'}: {msg}")


def _type_name(t) -> str:
  return getattr(t, "__name__", None) or str(t).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str, key: str):
  origin = typing.get_origin(tp)
  args = typing.get_args(tp)
  if tp is Any:
    return value
  if origin in (typing.Union, types.UnionType):
    if value is None and type(None) in args:
      return None
    errors = []
    for a in args:
      if a is type(None):
        continue
      try:
        return _convert(value, a, where, key)
      except ConfigError as e:
        errors.append(str(e))
    _fail(where, key, f"expected {' or '.join(_type_name(a) for a in args)}, got {value!r}")
  if origin is typing.Literal:
    if value not in args:
      _fail(where, key, f"must be one of {list(args)}, got {value!r}")
    return value
  if dataclasses.is_dataclass(tp):
    if isinstance(value, tp):
      return value
    if not isinstance(value, Mapping):
      _fail(where, key, f"expected a mapping for {tp.__name__}, got {value!r}")
    return from_dict(tp, value, where, key)
  if origin in (list, tuple, Sequence) or tp in (list, tuple):
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
      _fail(where, key, f"expected a list, got {value!r}")
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
      inner = args[0]
      return tuple(_convert(v, inner, where, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is tuple and args:
      if len(args) != len(value):
        _fail(where, key, f"expected {len(args)} items, got {len(value)}")
      return tuple(_convert(v, a, where, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    inner = args[0] if args else Any
    return tuple(_convert(v, inner, where, f"{key}[{i}]") for i, v in enumerate(value))
  if origin in (dict, Mapping) or tp in (dict, Mapping):
    if not isinstance(value, Mapping):
      _fail(where, key, f"expected a mapping, got {value!r}")
    kt, vt = args if args else (Any, Any)
    return {_convert(k, kt, where, f"{key}.{k}"): _convert(v, vt, where, f"{key}.{k}") for k, v in value.items()}
  if tp is float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      if isinstance(value, str):
        try:
          return float(value)
        except ValueError:
          pass
      _fail(where, key, f"expected a number, got {value!r}")
    return float(value)
  if tp is int:
    if isinstance(value, bool) or not isinstance(value, int):
      _fail(where, key, f"expected an integer, got {value!r}")
    return value
  if tp is bool:
    if not isinstance(value, bool):
      _fail(where, key, f"expected true or false, got {value!r}")
    return value
  if tp is str:
    if not isinstance(value, str):
      _fail(where, key, f"expected a string, got {value!r}")
    return value
  return value


def from_dict(cls, data: Mapping[str, Any], where: str = "config", prefix: str = ""):
  """Builds dataclass `cls` from a mapping; unknown keys and wrong types are ConfigErrors."""
  if data is None:
    data = {}
  if not isinstance(data, Mapping):
    _fail(where, prefix, f"expected a mapping, got {data!r}")
  hints = typing.get_type_hints(cls)
  fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
  kwargs = {}
  for k, v in data.items():
    key = f"{prefix}.{k}" if prefix else str(k)
    if k not in fields:
      close = difflib.get_close_matches(str(k), list(fields), n=1)
      _fail(where, key, "unknown key" + (f"; did you mean {close[0]!r}?" if close else f" (known: {sorted(fields)})"))
    kwargs[k] = _convert(v, hints[k], where, key)
  missing = [n for n, f in fields.items() if n not in kwargs and f.default is dataclasses.MISSING
             and f.default_factory is dataclasses.MISSING]
  if missing:
    _fail(where, f"{prefix}.{missing[0]}" if prefix else missing[0], "required key is missing")
  try:
    return cls(**kwargs)
  except BadValue as e:
    _fail(where, f"{prefix}.{e.key}" if prefix else e.key, e.msg)
  except (ValueError, TypeError) as e:
    _fail(where, prefix, str(e))


def to_dict(cfg) -> Any:
  """A plain (YAML/JSON-safe) dict of a config tree."""
  if dataclasses.is_dataclass(cfg):
    return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
  if isinstance(cfg, Mapping):
    return {k: to_dict(v) for k, v in cfg.items()}
  if isinstance(cfg, (list, tuple)):
    return [to_dict(v) for v in cfg]
  return cfg


def apply_overrides(data: dict, overrides: Sequence[str], where: str = "command line") -> dict:
  """Applies `a.b.c=value` overrides (value parsed as YAML) to a nested dict, in place."""
  for item in overrides:
    if "=" not in item:
      raise ConfigError(f"{where}: override {item!r} is not of the form key=value")
    key, raw = item.split("=", 1)
    try:
      value = yaml.safe_load(raw)
    except yaml.YAMLError as e:
      raise ConfigError(f"{where}: {key}: cannot parse value {raw!r} ({e})") from e
    set_dotted(data, key, value, where)
  return data


def set_dotted(data: dict, key: str, value: Any, where: str = "command line") -> None:
  """Sets `a.b.c` in a nested dict, in place, creating missing mappings."""
  node = data
  parts = key.split(".")
  for p in parts[:-1]:
    nxt = node.get(p)
    if nxt is None:
      nxt = node[p] = {}
    if not isinstance(nxt, dict):
      raise ConfigError(f"{where}: {key}: {p!r} is not a mapping")
    node = nxt
  node[parts[-1]] = value


def read_yaml(path: str | os.PathLike) -> dict:
  path = as_path(path)  # a config file, or a run's config.yaml (which may be remote)
  if not path.exists():
    raise ConfigError(f"{path}: no such config file")
  try:
    data = yaml.safe_load(path.read_text())
  except yaml.YAMLError as e:
    mark = getattr(e, "problem_mark", None)
    line = f":{mark.line + 1}" if mark is not None else ""
    raise ConfigError(f"{path}{line}: invalid YAML ({getattr(e, 'problem', e)})") from e
  if data is None:
    data = {}
  if not isinstance(data, dict):
    raise ConfigError(f"{path}: the top level must be a mapping")
  return data


def load(path: str | Path, cls, overrides: Sequence[str] = ()):
  """Reads YAML file `path` (with `base:` includes resolved), applies overrides, builds `cls`."""
  data = read_with_bases(Path(path))
  apply_overrides(data, overrides)
  where = str(path) + (" (with overrides)" if overrides else "")
  return from_dict(cls, data, where)


def _merge(base: dict, over: dict) -> dict:
  out = dict(base)
  for k, v in over.items():
    out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
  return out


def read_with_bases(path: Path, seen: tuple = ()) -> dict:
  """`base: other.yaml` (relative to the file) is loaded first and deep-merged under this file."""
  if path.resolve() in seen:
    raise ConfigError(f"{path}: circular 'base' include")
  data = read_yaml(path)
  base = data.pop("base", None)
  if base is None:
    return data
  bases = [base] if isinstance(base, str) else base
  merged: dict = {}
  for b in bases:
    merged = _merge(merged, read_with_bases((path.parent / b), seen + (path.resolve(),)))
  return _merge(merged, data)
