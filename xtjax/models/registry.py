"""One registry of model families: how to build each from a config and map it to Hugging Face.

A family module (encoder_family.py, t5_family.py, ...) defines its `FAMILY` (a `family.Family`) and
never imports this module; `FAMILY_TABLE` below lists them, so the imports run one way. Everything
else (loading, export, presets, CLI) asks the registry and never branches on the family name.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from typing import Any

from xtjax.errors import CheckpointError
from xtjax.models import decoder_family, encoder_family, gemma2_family, t5_family
from xtjax.models.family import KINDS, ModelConfig
from xtjax.models.family import Family  # also read as registry.Family by callers that annotate with it

# The registration table: adding a family is one module with a `FAMILY` and one entry here.
FAMILY_TABLE: tuple[Family, ...] = (encoder_family.FAMILY, t5_family.FAMILY, decoder_family.FAMILY,
                                   gemma2_family.FAMILY)


def check_interface(fam: Family) -> None:
  """A family's config implements `ModelConfig` (every abstract member, the common fields, a known kind)."""
  cls = fam.config_cls
  if not (isinstance(cls, type) and issubclass(cls, ModelConfig)) or not dataclasses.is_dataclass(cls):
    raise TypeError(f"model family {fam.name!r}: config_cls {cls!r} must be a dataclass subclassing ModelConfig")
  if inspect.isabstract(cls):
    raise TypeError(f"model family {fam.name!r}: {cls.__name__} leaves {sorted(cls.__abstractmethods__)} abstract")
  if getattr(cls, "kind", None) not in KINDS:
    raise TypeError(f"model family {fam.name!r}: {cls.__name__}.kind must be one of {KINDS}")
  fields = {f.name for f in dataclasses.fields(cls)}
  missing = sorted(set(ModelConfig.COMMON_FIELDS) - fields)
  if missing:
    raise TypeError(f"model family {fam.name!r}: {cls.__name__} lacks the common fields {missing}")


def _table(families: tuple[Family, ...]) -> dict[str, Family]:
  out: dict[str, Family] = {}
  for fam in families:
    if fam.name in out:
      raise ValueError(f"model family {fam.name!r} registered twice")
    check_interface(fam)
    out[fam.name] = fam
  return out


_FAMILIES: dict[str, Family] = _table(FAMILY_TABLE)


def get(name: str) -> Family:
  if name not in _FAMILIES:
    raise CheckpointError(f"unknown model family {name!r}; known: {sorted(_FAMILIES)}")
  return _FAMILIES[name]


def families() -> dict[str, Family]:
  return dict(_FAMILIES)


def for_hf_model_type(model_type: str, where: str = "config.json") -> Family:
  for fam in _FAMILIES.values():
    if model_type in fam.hf_model_types:
      return fam
  supported = sorted(t for f in _FAMILIES.values() for t in f.hf_model_types)
  raise CheckpointError(f"{where}: unsupported model_type {model_type!r}; xtjax supports {supported}")


def presets() -> dict[str, tuple[Family, Any]]:
  """Every named preset of every family: name -> (family, config)."""
  out = {}
  for fam in families().values():
    for name, cfg in fam.presets.items():
      out[name] = (fam, cfg)
  return out


def preset(name: str) -> tuple[Family, Any]:
  table = presets()
  if name not in table:
    raise CheckpointError(f"unknown preset {name!r}; known: {sorted(table)}")
  return table[name]


def config_to_dict(cfg) -> dict:
  return dataclasses.asdict(cfg)


def config_from_dict(family: Family, d: Mapping[str, Any], where: str = "config") -> Any:
  """Builds a family config from a dict, rejecting unknown keys by name."""
  fields = {f.name for f in dataclasses.fields(family.config_cls)}
  unknown = sorted(set(d) - fields)
  if unknown:
    raise CheckpointError(f"{where}: unknown {family.name} config keys {unknown}")
  try:
    return family.config_cls(**d)
  except (TypeError, ValueError) as e:
    raise CheckpointError(f"{where}: {e}") from e
