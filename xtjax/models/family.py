"""What the rest of xtjax needs to know about a model family (the entries of `registry.FAMILY_TABLE`).

Two declared interfaces, as Levanter's `LmConfig`: `Family` (how to build a family and map it to and
from Hugging Face) and `ModelConfig`, which every family's config subclasses. Code outside
`xtjax/models/` reads a model config only through `ModelConfig` (never `hasattr`/`getattr` by name or
the config's class; tests/models/test_family_interface.py checks it), so a new family is its module
and one registry row.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

# Our parameters as a nested pure dict (nnx.to_pure_dict) of numpy/jax arrays.
PureParams = dict

# encoder: bidirectional (BERT, XLM-R); seq2seq: encoder-decoder (T5; the encoder alone when `encoder_only`);
# causal: decoder-only LM (heads read the last attended token; text-to-text is prompt + target in one stack).
KINDS = ("encoder", "seq2seq", "causal")


class ModelConfig(abc.ABC):
  """The hyper-parameters of one family's model, as callers outside `models/` may read them.

  Subclasses are frozen dataclasses whose fields include `vocab_size`, `num_layers`, `dtype`,
  `param_dtype`, `scan_layers`, `remat`, `attention_impl` (`models.attention`: xla | dot_product | pallas |
  auto) and `model_type` (Hugging Face's; checked by the registry at import)."""

  kind: ClassVar[str] = ""  # each family sets one of KINDS (the registry checks it at import)
  # Fields every family config declares (the registry checks them).
  COMMON_FIELDS: ClassVar[tuple[str, ...]] = ("vocab_size", "num_layers", "dtype", "param_dtype", "scan_layers",
                                              "remat", "attention_impl", "model_type")
  # The `model.config_overrides` keys `plan --search` may vary.
  PLAN_SEARCH_FIELDS: ClassVar[tuple[str, ...]] = ("remat",)

  @property
  @abc.abstractmethod
  def hidden_size(self) -> int:
    """Width of the hidden states heads read."""

  @property
  @abc.abstractmethod
  def pad_id(self) -> int:
    """The id that pads (attention-masked) inputs of encoding and evaluation batches."""

  @property
  @abc.abstractmethod
  def stacked_layers(self) -> bool:
    """Layers stored stacked and run as one scan (`scan_layers`, or its default by depth)."""

  @abc.abstractmethod
  def stack_flops(self, length: int, first_token_only: bool = False) -> int:
    """Forward FLOPs for one sequence of `length` tokens up to the hidden states heads read (no LM head);
    `first_token_only`: the head reads the first token, which lets some stacks skip work."""

  def text_to_text_flops(self, length: int, target_length: int) -> int:
    """Forward FLOPs of one teacher-forced text-to-text example (LM head on the target included)."""
    raise ValueError(f"a {self.kind} model ({type(self).__name__}) has no text-to-text form")

  def generate_flops(self, length: int, new_tokens: int) -> int:
    """FLOPs of greedy decoding `new_tokens` after a prompt of `length` tokens (one example)."""
    raise ValueError(f"a {self.kind} model ({type(self).__name__}) cannot generate")

  def flops(self, batch: int, length: int, target_length: int = 0, first_token_only: bool = False) -> int:
    """Forward model FLOPs of a batch: the stack (heads excluded), or text-to-text when `target_length`."""
    if target_length:
      return batch * self.text_to_text_flops(length, target_length)
    return batch * self.stack_flops(length, first_token_only)

  @property
  def num_hidden_states(self) -> int:
    """Entries of `hidden_states`: the embedding output and each layer's."""
    return self.num_layers + 1

  def layers_run(self, text_to_text: bool = False) -> int:
    """Layers an example's activations pass (an encoder-decoder's decoder too for text-to-text)."""
    return self.num_layers

  @property
  def head_layer_norm_eps(self) -> float:
    """Epsilon of the layer norms inside task heads (the encoder's own where it has one)."""
    return 1e-5

  @property
  def token_types(self) -> bool:
    """Takes segment (token-type) ids beside the input ids."""
    return False

  @property
  def generates(self) -> bool:
    """Has a decoder that generates text."""
    return False

  @property
  def left_pad_prompts(self) -> bool:
    """Generation prompts end in the last column (decoder-only)."""
    return False

  @property
  def prompt_pad_id(self) -> int:
    """Padding of generation prompts."""
    raise ValueError(f"a {self.kind} model ({type(self).__name__}) cannot generate")

  @property
  def filler_id(self) -> int:
    """The lone token of a generation batch's filler rows."""
    raise ValueError(f"a {self.kind} model ({type(self).__name__}) cannot generate")

  def disk_config(self) -> ModelConfig:
    """The config whose parameter layout a model folder holds: layers stored one by one."""
    return dataclasses.replace(self, scan_layers=False)

  def without_decoder(self) -> ModelConfig:
    """The config of the part that heads read (an encoder-decoder without its decoder)."""
    return self

  def for_heads(self, lm_logits: bool) -> ModelConfig:
    """The config of what a run's heads use: without the parts only the LM logits need (an encoder-decoder's
    decoder, a decoder's untied LM head) when no head reads them (`heads.uses_lm_logits`), so that they are
    never built, trained, checkpointed nor loaded; the pretrained checkpoint keeps them."""
    return self

  @property
  def lm_part_left_out(self) -> bool:
    """Built without what only the LM logits need (`for_heads(False)`, or a checkpoint saved so)."""
    return False

  def for_saved_params(self, encoder_tree: Mapping[str, Any]) -> ModelConfig:
    """This config adjusted to a saved parameter tree of the backbone (e.g. an encoder saved without pooler)."""
    return self


@dataclasses.dataclass(frozen=True)
class Family:
  """How to build a family from its config and map it to and from Hugging Face."""

  name: str  # e.g. "encoder", "t5"
  config_cls: type[ModelConfig]  # frozen dataclass with the model hyper-parameters
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
