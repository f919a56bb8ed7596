"""One bidirectional Transformer encoder for BERT/mBERT, RoBERTa and XLM-R (post-layer-norm).

The families differ only by config switches: how position ids are made (BERT counts from 0;
RoBERTa/XLM-R count from `pad_token_id + 1` over non-padding tokens), whether token-type
embeddings exist, layer-norm epsilon and the activation.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from xtjax.models import layers as L
from xtjax.models import remat as R
from xtjax.models.attention import attention, check_impl
from xtjax.models.attention_kernels import MaskSpec
from xtjax.models.family import ModelConfig
from xtjax.models.layer_flops import encoder_layer_flops
from xtjax.models.scan import check_remat, layer_at, make_layers, run_layers, use_scan


@dataclasses.dataclass(frozen=True)
class EncoderConfig(ModelConfig):
  kind = "encoder"
  vocab_size: int
  hidden_size: int = 768
  num_layers: int = 12
  num_heads: int = 12
  intermediate_size: int = 3072
  max_position_embeddings: int = 512
  type_vocab_size: int = 2  # 0: no token-type embeddings
  layer_norm_eps: float = 1e-12
  hidden_act: str = "gelu"
  pad_token_id: int = 0
  position_style: str = "absolute"  # "absolute" (BERT) or "roberta" (offset by pad_token_id + 1)
  dropout_rate: float = 0.1
  attention_dropout_rate: float = 0.1
  pooler: bool = True  # BERT-style dense+tanh pooler over the first token
  initializer_range: float = 0.02
  model_type: str = "bert"  # Hugging Face model_type used on export: bert | roberta | xlm-roberta
  dtype: str = "float32"  # compute dtype
  param_dtype: str = "float32"
  # Layers stored stacked and run as one lax.scan (compiles one layer; xtjax.models.scan); None: on from 12 layers.
  scan_layers: bool | None = None
  remat: str = "none"  # a policy of xtjax.models.remat: none | full | minimal_with_context | ...
  attention_impl: str = "xla"  # xla | dot_product | pallas | auto (xtjax.models.attention)

  def __post_init__(self):
    check_remat(self.remat)
    check_impl(self.attention_impl)
    if self.hidden_size % self.num_heads:
      raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
    if self.position_style not in ("absolute", "roberta"):
      raise ValueError(f"position_style must be 'absolute' or 'roberta', got {self.position_style!r}")
    L.activation(self.hidden_act)
    L.to_dtype(self.dtype)
    L.to_dtype(self.param_dtype)

  @property
  def stacked_layers(self) -> bool:
    return use_scan(self.scan_layers, self.num_layers)

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_heads

  @property
  def pad_id(self) -> int:
    return self.pad_token_id

  @property
  def head_layer_norm_eps(self) -> float:
    return self.layer_norm_eps

  @property
  def token_types(self) -> bool:
    return self.type_vocab_size > 1

  def stack_flops(self, length: int, first_token_only: bool = False) -> int:
    # A head that reads the first token makes the last layer compute that position only (TaskModel).
    D, F = self.hidden_size, self.intermediate_size
    return ((self.num_layers - 1) * encoder_layer_flops(D, F, length)
            + encoder_layer_flops(D, F, length, queries=1 if first_token_only else None))

  def for_saved_params(self, encoder_tree) -> EncoderConfig:
    return dataclasses.replace(self, pooler="pooler" in encoder_tree)  # HF base models may lack one


class EncoderOutput(NamedTuple):
  last_hidden_state: jax.Array  # [B, L, D]
  hidden_states: tuple[jax.Array, ...]  # num_layers + 1 entries; 0 is the embedding output
  pooler_output: jax.Array | None  # [B, D] dense+tanh over the first token, if the model has a pooler


def _kw(cfg: EncoderConfig, rngs):
  return dict(rngs=rngs, dtype=L.to_dtype(cfg.dtype), param_dtype=L.to_dtype(cfg.param_dtype))


class Embeddings(nnx.Module):

  def __init__(self, cfg: EncoderConfig, rngs: nnx.Rngs):
    pdt = L.to_dtype(cfg.param_dtype)
    init = L.normal(cfg.initializer_range)
    self.word = L.param(rngs, init, (cfg.vocab_size, cfg.hidden_size), ("vocab", "embed"), pdt)
    self.position = L.param(rngs, init, (cfg.max_position_embeddings, cfg.hidden_size), ("positions", "embed"), pdt)
    self.token_type = (L.param(rngs, init, (cfg.type_vocab_size, cfg.hidden_size), ("types", "embed"), pdt)
                       if cfg.type_vocab_size > 0 else None)
    self.norm = L.LayerNorm(cfg.hidden_size, cfg.layer_norm_eps, **_kw(cfg, rngs))
    self.cfg = cfg

  def position_ids(self, input_ids_BxL):
    cfg = self.cfg
    if cfg.position_style == "roberta":
      mask = (input_ids_BxL != cfg.pad_token_id).astype(jnp.int32)
      return jnp.cumsum(mask, axis=1) * mask + cfg.pad_token_id
    return jnp.broadcast_to(jnp.arange(input_ids_BxL.shape[1], dtype=jnp.int32), input_ids_BxL.shape)

  def __call__(self, input_ids_BxL, token_type_ids_BxL=None, dropout_key=None):
    dt = L.to_dtype(self.cfg.dtype)
    x = jnp.take(self.word[...], input_ids_BxL, axis=0).astype(jnp.float32)
    x = x + jnp.take(self.position[...], self.position_ids(input_ids_BxL), axis=0).astype(jnp.float32)
    if self.token_type is not None:
      if token_type_ids_BxL is None:
        token_type_ids_BxL = jnp.zeros_like(input_ids_BxL)
      x = x + jnp.take(self.token_type[...], token_type_ids_BxL, axis=0).astype(jnp.float32)
    x = self.norm(x.astype(dt))
    return L.dropout(x, self.cfg.dropout_rate, dropout_key)


class SelfAttention(nnx.Module):
  """Multi-head self-attention with [embed, heads, kv] projections (heads shard on `tensor`)."""

  remat_names = {"query": (None, R.QUERY), "key": (None, R.KEY), "value": (None, R.VALUE), "out": (R.CONTEXT, R.OUT)}

  def __init__(self, cfg: EncoderConfig, rngs: nnx.Rngs):
    pdt = L.to_dtype(cfg.param_dtype)
    init = L.normal(cfg.initializer_range)
    D, H, K = cfg.hidden_size, cfg.num_heads, cfg.head_dim
    for name in ("query", "key", "value"):
      setattr(self, name, L.param(rngs, init, (D, H, K), ("embed", "heads", "kv"), pdt, fan_in_dims=1))
      setattr(self, name + "_bias", L.param(rngs, L.zeros, (H, K), ("heads", "kv"), pdt))
    self.out = L.param(rngs, init, (H, K, D), ("heads", "kv", "embed"), pdt, fan_in_dims=2)
    self.out_bias = L.param(rngs, L.zeros, (D,), ("norm",), pdt)
    self.cfg = cfg

  def __call__(self, x_BxLxD, bias_Bx1x1xL, dropout_key=None, num_queries: int | None = None,
               spec: MaskSpec | None = None):
    """Outputs for every position, or for the first `num_queries` only (keys/values still see all);
    `spec`: the padding `bias_Bx1x1xL` applies, for the fused kernels."""
    dt = L.to_dtype(self.cfg.dtype)
    x = x_BxLxD.astype(dt)

    def proj(i, name, inputs=x):  # adapter dropout keys fold 1..4; the attention probabilities use the key itself
      b = getattr(self, name + "_bias")[...].astype(dt)
      return L.project(self, name, "bld,dhk->blhk", inputs, dt, L.fold(dropout_key, i)) + b

    q = proj(1, "query", x if num_queries is None else x[:, :num_queries])
    k = proj(2, "key")
    v = proj(3, "value")
    ctx = attention(q, k, v, dtype=dt, divide_by=math.sqrt(self.cfg.head_dim), bias=bias_Bx1x1xL,
                    dropout_rate=self.cfg.attention_dropout_rate, dropout_key=dropout_key,
                    impl=self.cfg.attention_impl, spec=spec)
    out = L.project(self, "out", "bqhk,hkd->bqd", ctx, dt, L.fold(dropout_key, 4))
    return out + self.out_bias[...].astype(dt)


class Layer(nnx.Module):

  def __init__(self, cfg: EncoderConfig, rngs: nnx.Rngs):
    kw = _kw(cfg, rngs)
    self.attention = SelfAttention(cfg, rngs)
    self.attention_norm = L.LayerNorm(cfg.hidden_size, cfg.layer_norm_eps, **kw)
    self.intermediate = L.Dense(cfg.hidden_size, cfg.intermediate_size, ("embed", "mlp"),
                                stddev=cfg.initializer_range, remat_names=(None, R.MLP_IN), **kw)
    self.output = L.Dense(cfg.intermediate_size, cfg.hidden_size, ("mlp", "embed"),
                          stddev=cfg.initializer_range, remat_names=(None, R.MLP_OUT), **kw)
    self.output_norm = L.LayerNorm(cfg.hidden_size, cfg.layer_norm_eps, **kw)
    self.cfg = cfg

  def __call__(self, x, bias, dropout_key=None, num_queries: int | None = None, spec: MaskSpec | None = None):
    """[B, L, D] -> [B, L, D], or [B, num_queries, D]: only the first positions' outputs."""
    rate = self.cfg.dropout_rate
    h = self.attention(x, bias, L.fold(dropout_key, 0), num_queries, spec)
    if num_queries is not None:
      x = x[:, :num_queries]
    x = self.attention_norm(x + L.dropout(h, rate, L.fold(dropout_key, 1)))
    h = L.activation(self.cfg.hidden_act)(self.intermediate(x, L.fold(dropout_key, 3)))
    h = self.output(h, L.fold(dropout_key, 4))
    return self.output_norm(x + L.dropout(h, rate, L.fold(dropout_key, 2)))


class Encoder(nnx.Module):
  """Embeddings, `num_layers` post-LN Transformer layers and an optional pooler."""

  def __init__(self, cfg: EncoderConfig, rngs: nnx.Rngs):
    self.cfg = cfg
    rngs = L.KeySequence(rngs)
    self.embeddings = Embeddings(cfg, rngs)
    self.layers = make_layers([Layer(cfg, rngs) for _ in range(cfg.num_layers)], cfg.stacked_layers)
    self.pooler = (L.Dense(cfg.hidden_size, cfg.hidden_size, ("embed", None), stddev=cfg.initializer_range,
                           **_kw(cfg, rngs)) if cfg.pooler else None)

  def encoder_outputs(self, input_ids_BxL, attention_mask_BxL=None, token_type_ids_BxL=None, *,
                      dropout_key: jax.Array | None = None, first_tokens: int | None = None) -> EncoderOutput:
    """The hidden states heads read (`embed.encoder_outputs`); `first_tokens=n`: only the first n
    positions of the last layer are read, so only they are computed."""
    return self(input_ids_BxL, attention_mask_BxL, token_type_ids_BxL, dropout_key=dropout_key,
                last_layer_queries=first_tokens)

  def __call__(self, input_ids_BxL, attention_mask_BxL=None, token_type_ids_BxL=None, *,
               dropout_key: jax.Array | None = None, last_layer_queries: int | None = None) -> EncoderOutput:
    """`last_layer_queries=n`: the last layer computes only the first n positions (a head that reads
    the first token needs no more), so `last_hidden_state` and `hidden_states[-1]` are [B, n, D].
    Their values equal the full computation's first n rows; the last layer's attention, FFN and
    layer norms run on n rows instead of L (about 1/num_layers of the encoder's work)."""
    if attention_mask_BxL is None:
      attention_mask_BxL = jnp.ones_like(input_ids_BxL)
    bias = jnp.where(attention_mask_BxL[:, None, None, :] > 0, 0.0, jnp.finfo(jnp.float32).min).astype(jnp.float32)
    spec = MaskSpec(attention_mask_BxL > 0)
    x = embedded = self.embeddings(input_ids_BxL, token_type_ids_BxL, L.fold(dropout_key, 0))
    last = len(self.layers) - 1
    x, hidden = run_layers(self.layers, x, lambda layer, h, i: layer(h, bias, L.fold(dropout_key, i + 1), spec=spec),
                           remat=self.cfg.remat, stop=last)
    # The last layer apart: with `last_layer_queries` its output is shorter than the scan's carry. (Stacked,
    # the scan reads a slice of the first N-1 layers: XLA copies those weights once a step.)
    x, top = run_layers([layer_at(self.layers, last)], x,
                        lambda layer, h, i: layer(h, bias, L.fold(dropout_key, last + 1), last_layer_queries, spec),
                        remat=self.cfg.remat)
    hidden = [embedded] + hidden + top
    pooled = jnp.tanh(self.pooler(x[:, 0], L.fold(dropout_key, last + 2))) if self.pooler is not None else None
    return EncoderOutput(x, tuple(hidden), pooled)


def pool(hidden_BxLxD, attention_mask_BxL, pooling: str = "mean"):
  """Sentence vectors from hidden states: attention-masked `mean` or the first (`cls`) token."""
  if pooling == "cls":
    return hidden_BxLxD[:, 0]
  if pooling == "mean":
    m = attention_mask_BxL.astype(jnp.float32)[..., None]
    return (hidden_BxLxD.astype(jnp.float32) * m).sum(1) / jnp.maximum(m.sum(1), 1.0)
  raise ValueError(f"unknown pooling {pooling!r}; expected 'mean' or 'cls'")
