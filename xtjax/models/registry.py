"""One registry of model families: how to build each from a config and map it to Hugging Face.

A family module (encoder_family.py, t5_family.py, ...) registers itself at import; everything else
(loading, export, presets, CLI) asks the registry and never branches on the family name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from xtjax.errors import CheckpointError

# Our parameters as a nested pure dict (nnx.to_pure_dict) of numpy/jax arrays.
PureParams = dict


@dataclasses.dataclass(frozen=True)
class Family:
  """What the rest of xtjax needs to know about a model family."""

  name: str  # e.g. "encoder", "t5"
  config_cls: type  # frozen dataclass with the model hyper-parameters
  hf_model_types: tuple[str, ...]  # Hugging Face config.model_type values this family imports
  build: Callable[[Any, Any], Any]  # (config, nnx.Rngs) -> nnx.Module
  config_from_hf: Callable[[Mapping[str, Any]], Any]  # HF config.json dict -> config
  hf_config_from: Callable[[Any], dict]  # config -> HF config.json dict (for export)
  params_from_hf: Callable[[Any, Mapping[str, np.ndarray]], tuple[PureParams, list[str]]]
  # (config, {hf_name: array}) -> (our pure params, names deliberately ignored); strict: raises
  # CheckpointError naming the tensor on missing, unexpected or mis-shaped tensors.
  params_to_hf: Callable[[Any, PureParams], dict[str, np.ndarray]]  # inverse, for export
  hf_architecture: Callable[[Any], str]  # config -> "BertModel", "MT5ForConditionalGeneration", ...
  # (config, checkpoint tensor names) -> config adjusted to what the checkpoint holds (e.g. no pooler)
  config_for_tensors: Callable[[Any, Any], Any] = lambda cfg, names: cfg
  presets: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # name -> config of a real size


_FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
  if family.name in _FAMILIES:
    raise ValueError(f"model family {family.name!r} registered twice")
  _FAMILIES[family.name] = family
  return family


def _ensure_loaded():
  # Importing the family modules registers them (kept here so callers need one import).
  from xtjax.models import encoder_family  # noqa: F401
  try:
    from xtjax.models import t5_family  # noqa: F401
  except ImportError:
    pass


def get(name: str) -> Family:
  _ensure_loaded()
  if name not in _FAMILIES:
    raise CheckpointError(f"unknown model family {name!r}; known: {sorted(_FAMILIES)}")
  return _FAMILIES[name]


def families() -> dict[str, Family]:
  _ensure_loaded()
  return dict(_FAMILIES)


def for_hf_model_type(model_type: str, where: str = "config.json") -> Family:
  _ensure_loaded()
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
