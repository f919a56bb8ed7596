"""T5 / mT5 / umT5 encoder-decoder: pre-layer-norm blocks with RMS norms, relative position buckets
and no biases anywhere.

Unlike the BERT-style encoder: scores are not divided by sqrt(d_kv) (the scale is in `q`'s init);
positions enter only as a learned bias per (relative-position bucket, head), computed in the first
layer and shared (umT5: one per layer); T5 v1.0 ties the LM head and scales the decoder output by
d_model**-0.5, mT5 / T5 v1.1 / umT5 have an untied head. Task heads need only the encoder:
`T5.encode` / `T5.encoder_outputs` (as `Encoder.__call__`); `encoder_only=True` builds no decoder.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from xtjax.models import layers as L
from xtjax.models.encoder import EncoderOutput

MODEL_TYPES = ("t5", "mt5", "umt5")
_NEG = float(jnp.finfo(jnp.float32).min)


@dataclasses.dataclass(frozen=True)
class T5Config:
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

  def __post_init__(self):
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
  def is_gated(self) -> bool:
    return self.feed_forward_proj.startswith("gated-")

  @property
  def activation(self) -> str:
    # As transformers: "gated-gelu" means the tanh approximation (gelu_new); plain "gelu" is exact.
    return "gelu_new" if self.feed_forward_proj == "gated-gelu" else self.feed_forward_proj.split("-")[-1]


class DecodeCache(NamedTuple):
  """Per decoder layer: self-attention keys/values [B, max_len, H, K] filled up to `index`, and the
  cross-attention keys/values [B, S, H, K] computed once from the encoder output."""

  self_keys: tuple[jax.Array, ...]
  self_values: tuple[jax.Array, ...]
  cross_keys: tuple[jax.Array, ...]
  cross_values: tuple[jax.Array, ...]
  index: jax.Array  # int32 scalar: decoder position of the next input token


class DecodeOutput(NamedTuple):
  logits: jax.Array  # [B, T, V] float32
  cache: DecodeCache | None  # the advanced cache when one was given


def relative_position_bucket(relative_position, bidirectional: bool, num_buckets: int, max_distance: int):
  """Mesh TensorFlow's bucketing, exactly as transformers' `T5Attention._relative_position_bucket`.

  Half the buckets hold exact small distances, the other half log-spaced distances up to
  `max_distance`; bidirectional (encoder) buckets also split by sign, causal (decoder) ones count
  only keys before the query.
  """
  rp = jnp.asarray(relative_position, jnp.int32)
  buckets = jnp.zeros_like(rp)
  if bidirectional:
    num_buckets //= 2
    buckets = buckets + (rp > 0).astype(jnp.int32) * num_buckets
    rp = jnp.abs(rp)
  else:
    rp = -jnp.minimum(rp, 0)
  max_exact = num_buckets // 2
  is_small = rp < max_exact
  # Same float32 operations in the same order as transformers; log(0) is never selected, keep it finite.
  log_ratio = jnp.log(jnp.maximum(rp, 1).astype(jnp.float32) / max_exact) / math.log(max_distance / max_exact)
  large = max_exact + (log_ratio * (num_buckets - max_exact)).astype(jnp.int32)
  large = jnp.minimum(large, num_buckets - 1)
  return buckets + jnp.where(is_small, rp, large)


def _kw(cfg: T5Config, rngs):
  return dict(rngs=rngs, dtype=L.to_dtype(cfg.dtype), param_dtype=L.to_dtype(cfg.param_dtype))


class RMSNorm(nnx.Module):
  """T5's layer norm: scale only, no mean subtraction, no bias; computed in f32."""

  def __init__(self, dim: int, eps: float, *, rngs, dtype, param_dtype):
    self.scale = L.param(rngs, L.ones, (dim,), ("norm",), param_dtype)
    self.eps = eps
    self.dtype = dtype

  def __call__(self, x):
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + self.eps)
    return (y * self.scale[...].astype(jnp.float32)).astype(self.dtype)


class Attention(nnx.Module):
  """Multi-head attention with [embed, heads, kv] projections, no biases and no 1/sqrt(d_kv)."""

  def __init__(self, cfg: T5Config, rngs: nnx.Rngs, relative_bias: bool):
    pdt = L.to_dtype(cfg.param_dtype)
    D, H, K, f = cfg.d_model, cfg.num_heads, cfg.d_kv, cfg.initializer_factor
    # transformers' init: the query std carries the 1/sqrt(d_kv) that the attention omits.
    for name, std in (("q", f * (D * K) ** -0.5), ("k", f * D ** -0.5), ("v", f * D ** -0.5)):
      setattr(self, name, L.param(rngs, L.normal(std), (D, H, K), ("embed", "heads", "kv"), pdt, fan_in_dims=1))
    self.o = L.param(rngs, L.normal(f * (H * K) ** -0.5), (H, K, D), ("heads", "kv", "embed"), pdt, fan_in_dims=2)
    self.relative_attention_bias = (
        L.param(rngs, L.normal(f * D ** -0.5), (cfg.relative_attention_num_buckets, H), ("relpos_buckets", "heads"),
                pdt) if relative_bias else None)
    self.cfg = cfg

  def query(self, x_BxQxD, dropout_key=None):  # dropout_key: for a LoRA adapter's dropout, as in key_value
    return L.project(self, "q", "bqd,dhk->bqhk", x_BxQxD, L.to_dtype(self.cfg.dtype), dropout_key)

  def key_value(self, x_BxSxD, dropout_key=None):
    dt = L.to_dtype(self.cfg.dtype)
    x = x_BxSxD.astype(dt)
    return tuple(L.project(self, n, "bsd,dhk->bshk", x, dt, L.fold(dropout_key, i)) for i, n in enumerate("kv"))

  def position_bias(self, query_pos_Q, key_pos_S, bidirectional: bool):
    """[1, H, Q, S] float32 learned bias for each (query, key) relative position bucket."""
    cfg = self.cfg
    buckets_QxS = relative_position_bucket(key_pos_S[None, :] - query_pos_Q[:, None], bidirectional,
                                           cfg.relative_attention_num_buckets, cfg.relative_attention_max_distance)
    values_QxSxH = jnp.take(self.relative_attention_bias[...], buckets_QxS, axis=0).astype(jnp.float32)
    return jnp.transpose(values_QxSxH, (2, 0, 1))[None]

  def attend(self, q_BxQxHxK, k_BxSxHxK, v_BxSxHxK, bias_BxHxQxS, dropout_key=None):
    dt = L.to_dtype(self.cfg.dtype)
    scores = L.einsum("bqhk,bshk->bhqs", q_BxQxHxK, k_BxSxHxK, dt, jnp.float32)
    probs = jax.nn.softmax(scores + bias_BxHxQxS, axis=-1)
    probs = L.dropout(probs, self.cfg.dropout_rate, dropout_key).astype(dt)
    ctx = L.einsum("bhqs,bshk->bqhk", probs, v_BxSxHxK, dt)
    return L.project(self, "o", "bqhk,hkd->bqd", ctx, dt, L.fold(dropout_key, 1))


class FeedForward(nnx.Module):
  """act(x wi_0) * (x wi_1) -> wo when gated (mT5, T5 v1.1), act(x wi) -> wo otherwise (T5 v1.0)."""

  def __init__(self, cfg: T5Config, rngs: nnx.Rngs):
    pdt = L.to_dtype(cfg.param_dtype)
    D, F, f = cfg.d_model, cfg.d_ff, cfg.initializer_factor
    names = ("wi_0", "wi_1") if cfg.is_gated else ("wi",)
    for name in names:
      setattr(self, name, L.param(rngs, L.normal(f * D ** -0.5), (D, F), ("embed", "mlp"), pdt, fan_in_dims=1))
    self.wo = L.param(rngs, L.normal(f * F ** -0.5), (F, D), ("mlp", "embed"), pdt, fan_in_dims=1)
    self.cfg = cfg

  def __call__(self, x_BxLxD, dropout_key=None):
    dt = L.to_dtype(self.cfg.dtype)
    x = x_BxLxD.astype(dt)
    act = L.activation(self.cfg.activation)
    proj = lambda name, i, v, spec="...d,df->...f": L.project(self, name, spec, v, dt, L.fold(dropout_key, i))
    h = act(proj("wi_0", 1, x)) * proj("wi_1", 2, x) if self.cfg.is_gated else act(proj("wi", 1, x))
    h = L.dropout(h, self.cfg.dropout_rate, dropout_key)
    return proj("wo", 3, h, "...f,fd->...d")


class EncoderLayer(nnx.Module):

  def __init__(self, cfg: T5Config, rngs: nnx.Rngs, relative_bias: bool):
    kw = _kw(cfg, rngs)
    self.attention_norm = RMSNorm(cfg.d_model, cfg.layer_norm_epsilon, **kw)
    self.attention = Attention(cfg, rngs, relative_bias)
    self.ffn_norm = RMSNorm(cfg.d_model, cfg.layer_norm_epsilon, **kw)
    self.ffn = FeedForward(cfg, rngs)
    self.cfg = cfg

  def __call__(self, x, bias, dropout_key=None):
    rate = self.cfg.dropout_rate
    h = self.attention_norm(x)
    att, k = self.attention, dropout_key
    h = att.attend(att.query(h, L.fold(k, 4)), *att.key_value(h, L.fold(k, 5)), bias, L.fold(k, 0))
    x = x + L.dropout(h, rate, L.fold(dropout_key, 1))
    h = self.ffn(self.ffn_norm(x), L.fold(dropout_key, 2))
    return x + L.dropout(h, rate, L.fold(dropout_key, 3))


class DecoderLayer(nnx.Module):

  def __init__(self, cfg: T5Config, rngs: nnx.Rngs, relative_bias: bool):
    kw = _kw(cfg, rngs)
    self.self_attention_norm = RMSNorm(cfg.d_model, cfg.layer_norm_epsilon, **kw)
    self.self_attention = Attention(cfg, rngs, relative_bias)
    self.cross_attention_norm = RMSNorm(cfg.d_model, cfg.layer_norm_epsilon, **kw)
    self.cross_attention = Attention(cfg, rngs, relative_bias=False)
    self.ffn_norm = RMSNorm(cfg.d_model, cfg.layer_norm_epsilon, **kw)
    self.ffn = FeedForward(cfg, rngs)
    self.cfg = cfg

  def __call__(self, x, self_bias, cross_bias, cross_kv, self_kv_cache=None, index=None, dropout_key=None):
    """Returns (x, updated self-attention (keys, values) cache or None)."""
    rate = self.cfg.dropout_rate
    h = self.self_attention_norm(x)
    q = self.self_attention.query(h, L.fold(dropout_key, 6))
    k, v = self.self_attention.key_value(h, L.fold(dropout_key, 7))
    new_cache = None
    if self_kv_cache is not None:  # write this step's keys/values at `index`, attend over the whole buffer
      ck, cv = self_kv_cache
      k = jax.lax.dynamic_update_slice(ck, k.astype(ck.dtype), (0, index, 0, 0))
      v = jax.lax.dynamic_update_slice(cv, v.astype(cv.dtype), (0, index, 0, 0))
      new_cache = (k, v)
    h = self.self_attention.attend(q, k, v, self_bias, L.fold(dropout_key, 0))
    x = x + L.dropout(h, rate, L.fold(dropout_key, 1))
    h = self.cross_attention_norm(x)
    h = self.cross_attention.attend(self.cross_attention.query(h, L.fold(dropout_key, 8)), *cross_kv, cross_bias,
                                    L.fold(dropout_key, 2))
    x = x + L.dropout(h, rate, L.fold(dropout_key, 3))
    h = self.ffn(self.ffn_norm(x), L.fold(dropout_key, 4))
    return x + L.dropout(h, rate, L.fold(dropout_key, 5)), new_cache


def _layers(cfg: T5Config, rngs, cls, n: int):
  # The relative position bias lives in the first layer (shared by all) or in every layer (umT5).
  return nnx.List([cls(cfg, rngs, relative_bias=(i == 0 or cfg.per_layer_position_bias)) for i in range(n)])


class EncoderStack(nnx.Module):

  def __init__(self, cfg: T5Config, rngs: nnx.Rngs):
    self.layers = _layers(cfg, rngs, EncoderLayer, cfg.num_layers)
    self.final_norm = RMSNorm(cfg.d_model, cfg.layer_norm_epsilon, **_kw(cfg, rngs))
    self.cfg = cfg

  def __call__(self, x_BxLxD, attention_mask_BxL, dropout_key=None):
    """(final-norm output, hidden states: embedding output, layers 1..n-1, final-norm output)."""
    pos = jnp.arange(x_BxLxD.shape[1], dtype=jnp.int32)
    mask_bias = jnp.where(attention_mask_BxL[:, None, None, :] > 0, 0.0, _NEG).astype(jnp.float32)
    hidden = [x_BxLxD]
    x, bias = x_BxLxD, None
    for i, layer in enumerate(self.layers):
      if layer.attention.relative_attention_bias is not None:
        bias = layer.attention.position_bias(pos, pos, bidirectional=True) + mask_bias
      x = layer(x, bias, L.fold(dropout_key, i))
      hidden.append(x)
    x = L.dropout(self.final_norm(x), self.cfg.dropout_rate, L.fold(dropout_key, len(self.layers)))
    hidden[-1] = x  # as transformers: the last hidden state is the final-norm output
    return x, tuple(hidden)


class DecoderStack(nnx.Module):

  def __init__(self, cfg: T5Config, rngs: nnx.Rngs):
    self.layers = _layers(cfg, rngs, DecoderLayer, cfg.num_decoder_layers)
    self.final_norm = RMSNorm(cfg.d_model, cfg.layer_norm_epsilon, **_kw(cfg, rngs))
    self.cfg = cfg

  def __call__(self, x_BxTxD, self_mask_BxTxS, query_pos_T, key_pos_S, cross_bias_Bx1x1xS, cross_kvs,
               self_kv_caches=None, index=None, dropout_key=None):
    new_caches, bias = [], None
    for i, layer in enumerate(self.layers):
      if layer.self_attention.relative_attention_bias is not None:
        pos_bias = layer.self_attention.position_bias(query_pos_T, key_pos_S, bidirectional=False)
        bias = jnp.where(self_mask_BxTxS[:, None], pos_bias, _NEG)
      cache = self_kv_caches[i] if self_kv_caches is not None else None
      x_BxTxD, cache = layer(x_BxTxD, bias, cross_bias_Bx1x1xS, cross_kvs[i], cache, index, L.fold(dropout_key, i))
      new_caches.append(cache)
    x = L.dropout(self.final_norm(x_BxTxD), self.cfg.dropout_rate, L.fold(dropout_key, len(self.layers)))
    return x, new_caches


class T5(nnx.Module):
  """Shared embedding, encoder, decoder and LM head (`encoder_only`: embedding and encoder only)."""

  def __init__(self, cfg: T5Config, rngs: nnx.Rngs):
    pdt = L.to_dtype(cfg.param_dtype)
    V, D, f = cfg.vocab_size, cfg.d_model, cfg.initializer_factor
    rngs = L.KeySequence(rngs)
    self.cfg = cfg
    self.shared = L.param(rngs, L.normal(f * 1.0), (V, D), ("vocab", "embed"), pdt)
    self.encoder = EncoderStack(cfg, rngs)
    self.decoder = DecoderStack(cfg, rngs) if not cfg.encoder_only else None
    self.lm_head = (L.param(rngs, L.normal(f * 1.0), (D, V), ("embed", "vocab"), pdt)
                    if not (cfg.encoder_only or cfg.tie_word_embeddings) else None)

  def _embed(self, ids_BxL, dropout_key):
    x = jnp.take(self.shared[...], ids_BxL, axis=0).astype(L.to_dtype(self.cfg.dtype))
    return L.dropout(x, self.cfg.dropout_rate, dropout_key)

  def encoder_outputs(self, input_ids_BxL, attention_mask_BxL=None, token_type_ids_BxL=None, *,
                      dropout_key: jax.Array | None = None) -> EncoderOutput:
    """The encoder with `Encoder.__call__`'s signature (T5 has no token types; no pooler)."""
    del token_type_ids_BxL
    if attention_mask_BxL is None:
      attention_mask_BxL = jnp.ones_like(input_ids_BxL)
    x = self._embed(input_ids_BxL, L.fold(dropout_key, 0))
    last, hidden = self.encoder(x, attention_mask_BxL, L.fold(dropout_key, 1))
    return EncoderOutput(last, hidden, None)

  def encode(self, input_ids_BxL, attention_mask_BxL=None, dropout_key: jax.Array | None = None):
    """Encoder final-norm output [B, L, D]; what task heads and the decoder's cross attention read."""
    return self.encoder_outputs(input_ids_BxL, attention_mask_BxL, dropout_key=dropout_key).last_hidden_state

  def _check_decoder(self):
    if self.decoder is None:
      raise ValueError("this T5 model was built with encoder_only=True: it has no decoder")

  def init_cache(self, encoder_hidden_BxSxD, max_decode_length: int) -> DecodeCache:
    """An empty self-attention cache of `max_decode_length` positions and the cross keys/values."""
    self._check_decoder()
    cfg = self.cfg
    B = encoder_hidden_BxSxD.shape[0]
    zeros = jnp.zeros((B, max_decode_length, cfg.num_heads, cfg.d_kv), L.to_dtype(cfg.dtype))
    cross = [layer.cross_attention.key_value(encoder_hidden_BxSxD) for layer in self.decoder.layers]
    n = len(self.decoder.layers)
    return DecodeCache((zeros,) * n, (zeros,) * n, tuple(k for k, _ in cross), tuple(v for _, v in cross),
                       jnp.zeros((), jnp.int32))

  def decode(self, decoder_input_ids_BxT, encoder_hidden_BxSxD, encoder_mask_BxS, cache: DecodeCache | None = None,
             decoder_attention_mask_BxT=None, dropout_key: jax.Array | None = None) -> DecodeOutput:
    """Decoder logits [B, T, V] (f32).

    Without `cache`: teacher forcing over the whole target (causal mask, optional padding mask).
    With `cache`: the T tokens sit at positions cache.index.. and the cache comes back advanced.
    """
    self._check_decoder()
    B, T = decoder_input_ids_BxT.shape
    x = self._embed(decoder_input_ids_BxT, L.fold(dropout_key, 0))
    cross_bias = jnp.where(encoder_mask_BxS[:, None, None, :] > 0, 0.0, _NEG).astype(jnp.float32)
    if cache is None:
      index = jnp.zeros((), jnp.int32)
      key_pos = jnp.arange(T, dtype=jnp.int32)
      cross_kvs = [layer.cross_attention.key_value(encoder_hidden_BxSxD, L.fold(dropout_key, 2, i))
                   for i, layer in enumerate(self.decoder.layers)]
      self_kvs = None
    else:
      index = cache.index
      key_pos = jnp.arange(cache.self_keys[0].shape[1], dtype=jnp.int32)
      cross_kvs = list(zip(cache.cross_keys, cache.cross_values))
      self_kvs = list(zip(cache.self_keys, cache.self_values))
    query_pos = index + jnp.arange(T, dtype=jnp.int32)
    mask = jnp.broadcast_to(key_pos[None, None, :] <= query_pos[None, :, None], (B, T, key_pos.shape[0]))
    if decoder_attention_mask_BxT is not None and cache is None:
      mask = mask & (decoder_attention_mask_BxT[:, None, :] > 0)
    x, new_kvs = self.decoder(x, mask, query_pos, key_pos, cross_bias, cross_kvs, self_kvs, index,
                              L.fold(dropout_key, 1))
    logits = self.logits(x)
    if cache is None:
      return DecodeOutput(logits, None)
    return DecodeOutput(logits, cache._replace(self_keys=tuple(k for k, _ in new_kvs),
                                               self_values=tuple(v for _, v in new_kvs), index=index + T))

  def logits(self, decoder_hidden_BxTxD):
    dt = L.to_dtype(self.cfg.dtype)
    x = decoder_hidden_BxTxD.astype(dt)
    if self.lm_head is None:  # tied (T5 v1.0): Mesh TensorFlow rescales before reusing the embedding
      x = x * (self.cfg.d_model ** -0.5)
      return L.einsum("btd,vd->btv", x, self.shared[...], dt, jnp.float32)
    return L.einsum("btd,dv->btv", x, self.lm_head[...], dt, jnp.float32)

  def __call__(self, input_ids_BxL, attention_mask_BxL, decoder_input_ids_BxT, decoder_attention_mask_BxT=None,
               dropout_key: jax.Array | None = None):
    """Teacher-forced logits [B, T, V] (f32)."""
    enc = self.encode(input_ids_BxL, attention_mask_BxL, L.fold(dropout_key, 0))
    return self.decode(decoder_input_ids_BxT, enc, attention_mask_BxL, None, decoder_attention_mask_BxT,
                       L.fold(dropout_key, 1)).logits


def shift_right(labels_BxT, cfg: T5Config):
  """Teacher-forcing decoder inputs from labels: start token first, -100 (ignored labels) as padding."""
  shifted = jnp.concatenate([jnp.full_like(labels_BxT[:, :1], cfg.decoder_start_token_id), labels_BxT[:, :-1]], axis=1)
  return jnp.where(shifted == -100, cfg.pad_token_id, shifted)
