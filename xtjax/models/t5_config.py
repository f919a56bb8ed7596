"""The T5 / mT5 / umT5 hyper-parameters (`xtjax.models.t5`, `xtjax.models.t5_blocks`)."""

from __future__ import annotations

import dataclasses

from xtjax.models import layers as L
from xtjax.models.attention import check_impl
from xtjax.models.family import ModelConfig
from xtjax.models.layer_flops import encoder_layer_flops
from xtjax.models.scan import check_remat, use_scan

MODEL_TYPES = ("t5", "mt5", "umt5")


@dataclasses.dataclass(frozen=True)
class T5Config(ModelConfig):
  kind = "seq2seq"
  vocab_size: int = 250112
  d_model: int = 512
  d_kv: int = 64
  d_ff: int = 1024
  num_layers: int = 8
  num_decoder_layers: int = 8
  num_heads: int = 6
  relative_attention_num_buckets: int = 32
  relative_attention_max_distance: int = 128
  layer_norm_epsilon: float = 1e-6
  feed_forward_proj: str = "gated-gelu"  # "gated-gelu" (mT5, T5 v1.1), "relu" (T5 v1.0), "gated-silu", ...
  tie_word_embeddings: bool = False  # True: LM head = embedding, decoder output scaled by d_model**-0.5
  dropout_rate: float = 0.1
  pad_token_id: int = 0
  eos_token_id: int = 1
  decoder_start_token_id: int = 0
  per_layer_position_bias: bool = False  # umT5: a relative position bias in every layer, not only the first
  encoder_only: bool = False  # build only the embedding and the encoder (task heads on `encode`)
  initializer_factor: float = 1.0
  model_type: str = "mt5"  # Hugging Face model_type used on export: t5 | mt5 | umt5
  dtype: str = "float32"  # compute dtype
  param_dtype: str = "float32"
  # Layers stored stacked and run as one lax.scan per stack (xtjax.models.scan); None: on from 12 layers.
  scan_layers: bool | None = None
  remat: str = "none"  # a policy of xtjax.models.remat: none | full | minimal_with_context | ...
  attention_impl: str = "xla"  # xla | dot_product | pallas | auto (xtjax.models.attention)

  def __post_init__(self):
    check_remat(self.remat)
    check_impl(self.attention_impl)
    if self.model_type not in MODEL_TYPES:
      raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {self.model_type!r}")
    parts = self.feed_forward_proj.split("-")
    if len(parts) > 2 or (len(parts) == 2 and parts[0] != "gated"):
      raise ValueError(f"feed_forward_proj must be 'ACT' or 'gated-ACT' (e.g. 'gated-gelu', 'relu'), "
                       f"got {self.feed_forward_proj!r}")
    L.activation(self.activation)
    L.to_dtype(self.dtype)
    L.to_dtype(self.param_dtype)

  @property
  def stacked_layers(self) -> bool:
    return use_scan(self.scan_layers, self.num_layers)

  @property
  def is_gated(self) -> bool:
    return self.feed_forward_proj.startswith("gated-")

  @property
  def activation(self) -> str:
    # As transformers: "gated-gelu" means the tanh approximation (gelu_new); plain "gelu" is exact.
    return "gelu_new" if self.feed_forward_proj == "gated-gelu" else self.feed_forward_proj.split("-")[-1]

  # ---- the ModelConfig interface ----
  @property
  def hidden_size(self) -> int:
    return self.d_model

  @property
  def pad_id(self) -> int:
    return self.pad_token_id

  @property
  def generates(self) -> bool:
    return not self.encoder_only

  @property
  def prompt_pad_id(self) -> int:
    return self.pad_token_id

  @property
  def filler_id(self) -> int:
    return self.eos_token_id

  def layers_run(self, text_to_text: bool = False) -> int:
    return self.num_layers + (self.num_decoder_layers if text_to_text else 0)

  def without_decoder(self) -> T5Config:
    return dataclasses.replace(self, encoder_only=True)

  def for_heads(self, lm_logits: bool) -> T5Config:
    return self if lm_logits else self.without_decoder()

  @property
  def lm_part_left_out(self) -> bool:
    return self.encoder_only

  def for_saved_params(self, encoder_tree) -> T5Config:
    return dataclasses.replace(self, encoder_only="decoder" not in encoder_tree)

  def stack_flops(self, length: int, first_token_only: bool = False) -> int:
    # T5's encoder computes every position whatever the head reads.
    inner = self.num_heads * self.d_kv
    return self.num_layers * encoder_layer_flops(self.d_model, self.d_ff, length, inner, self.is_gated)

  def target_flops(self, target_length: int, source_length: int, cached_length: int | None = None) -> int:
    """Decoder FLOPs per example for `target_length` new positions over a `source_length` encoder output.

    Teacher forcing: `cached_length` None (causal self-attention over the target). Incremental decoding
    with a cache: `cached_length` is the self-attention length attended (the cache size). The
    cross-attention keys/values of the source are counted here once.
    """
    D, I, F, T, S = self.d_model, self.num_heads * self.d_kv, self.d_ff, target_length, source_length
    self_len = T if cached_length is None else cached_length
    per_layer = (4 * 2 * T * D * I + 2 * 2 * T * self_len * I  # self-attention
                 + 2 * 2 * T * D * I + 2 * 2 * S * D * I + 2 * 2 * T * S * I  # cross-attention
                 + (3 if self.is_gated else 2) * 2 * T * D * F)
    return self.num_decoder_layers * per_layer + 2 * T * D * self.vocab_size

  def text_to_text_flops(self, length: int, target_length: int) -> int:
    return self.stack_flops(length) + self.target_flops(target_length, length)

  def generate_flops(self, length: int, new_tokens: int) -> int:
    # Encoder once, cross K/V once, then one cached step per token (each step attends over the whole
    # preallocated cache of `new_tokens` positions).
    D, I, S = self.d_model, self.num_heads * self.d_kv, length
    cross_kv = self.num_decoder_layers * 2 * 2 * S * D * I
    step = self.target_flops(1, S, cached_length=new_tokens) - cross_kv
    return self.stack_flops(S) + cross_kv + new_tokens * step
