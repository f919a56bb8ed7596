"""What the rest of xtjax needs to know about a model family (the entries of `registry.FAMILY_TABLE`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

# Our parameters as a nested pure dict (nnx.to_pure_dict) of numpy/jax arrays.
PureParams = dict


@dataclasses.dataclass(frozen=True)
class Family:
  """How to build a family from its config and map it to and from Hugging Face."""

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
  # (config, checkpoint tensor names, where) -> hf_mapping.TensorPlan: a family that decides its mapping
  # from names alone is loaded tensor by tensor onto the mesh (`hf_stream`), never whole on one host.
  tensor_plan: Callable[[Any, Any, str], Any] | None = None
