"""Gemma 2 (2B / 9B / 27B): a decoder-only LLM built from the Llama family's parts plus its own switches.

What differs from Llama (`decoder.py`): layers alternate local (sliding-window) and global attention,
so they are built and stacked in (local, global) pairs, one `LayerStack` scan step per pair; attention
scores and final logits are soft-capped (c * tanh(x / c)); queries are scaled by
query_pre_attn_scalar**-0.5, not head_dim**-0.5; the feed-forward is GeGLU (tanh-approximate GELU);
every block has four RMSNorms (before and after attention and feed-forward) that scale by (1 + w);
the embedding is tied to the LM head and its lookups are multiplied by sqrt(hidden_size).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from xtjax.models import layers as L
from xtjax.models import remat as R
from xtjax.models.attention import attention
from xtjax.models.attention_kernels import MaskSpec
from xtjax.models.decoder import (MLP, Decoder, DecoderConfig, DecoderOutput, KVCache, _kw, apply_rotary,
                                  causal_slots, rotary)
from xtjax.models.scan import make_layers, run_layers
from xtjax.parallel.rules import constrain

LAYER_KINDS = ("sliding", "full")  # the repeating group: layer 2g is local (windowed), 2g + 1 global


@dataclasses.dataclass(frozen=True)
class Gemma2Config(DecoderConfig):
  vocab_size: int = 256000
  hidden_size: int = 2304
  num_layers: int = 26
  num_heads: int = 8
  num_kv_heads: int = 4
  head_dim: int = 256
  intermediate_size: int = 9216
  max_position_embeddings: int = 8192
  hidden_act: str = "gelu_pytorch_tanh"
  sliding_window: int = 4096  # of the local layers
  query_pre_attn_scalar: int = 256  # scores are scaled by its -1/2 power
  attn_logit_softcapping: float = 50.0  # 0: off
  final_logit_softcapping: float = 30.0  # 0: off
  tie_word_embeddings: bool = True
  pad_token_id: int | None = 0
  bos_token_id: int | None = 2
  eos_token_ids: tuple[int, ...] = (1,)
  model_type: str = "gemma2"

  def __post_init__(self):
    super().__post_init__()
    if self.num_layers % len(LAYER_KINDS):
      raise ValueError(f"num_layers {self.num_layers} must be even: Gemma 2 layers come in (local, global) pairs")
    if not self.tie_word_embeddings:
      raise ValueError("Gemma 2 ties its LM head to the embedding (tie_word_embeddings must be true)")
    if self.attention_bias != self.attention_out_bias or self.mlp_bias:
      raise ValueError("Gemma 2: attention_bias and attention_out_bias are one switch, and there is no mlp_bias")


class GemmaRMSNorm(nnx.Module):
  """RMS norm in f32 scaling by (1 + w) (w starts at 0), cast back after the scale (Gemma's order)."""

  def __init__(self, dim: int, eps: float, *, rngs, dtype, param_dtype):
    self.scale = L.param(rngs, L.zeros, (dim,), ("norm",), param_dtype)
    self.eps, self.dtype = eps, dtype

  def __call__(self, x):
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + self.eps)
    return (y * (1.0 + self.scale[...].astype(jnp.float32))).astype(self.dtype)


def softcap(x, cap: float):
  return jnp.tanh(x / cap) * cap if cap else x


class Attention(nnx.Module):
  """Grouped-query attention with soft-capped scores; `window` > 0: a local (sliding-window) layer."""

  def __init__(self, cfg: Gemma2Config, window: int, rngs):
    D, H, N, K, b = cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.attention_bias
    self.q = L.Dense(D, H * K, ("embed", "heads"), use_bias=b, remat_names=(None, R.QUERY), **_kw(cfg, rngs))
    self.k = L.Dense(D, N * K, ("embed", "kv_heads"), use_bias=b, remat_names=(None, R.KEY), **_kw(cfg, rngs))
    self.v = L.Dense(D, N * K, ("embed", "kv_heads"), use_bias=b, remat_names=(None, R.VALUE), **_kw(cfg, rngs))
    self.o = L.Dense(H * K, D, ("heads", "embed"), use_bias=b, remat_names=(R.CONTEXT, R.OUT), **_kw(cfg, rngs))
    self.cfg, self.window = cfg, window

  def __call__(self, x_BxTxD, cos, sin, allowed_BxTxS, positions_BxT, key_pos_BxS, kv_cache=None, index=None,
               dropout_key=None, spec: MaskSpec | None = None):
    """(output [B, T, D], this call's (keys, values) [B, T, N, K] when a cache is given, else None);
    `spec`: `allowed_BxTxS` in structural form (fused kernels; this layer's window is added to it)."""
    cfg = self.cfg
    dt = L.to_dtype(cfg.dtype)
    B, T, _ = x_BxTxD.shape
    H, N, K = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    key = lambda i: L.fold(dropout_key, i)
    q = apply_rotary(self.q(x_BxTxD, key(1)).reshape(B, T, N, H // N, K), cos[:, :, None], sin[:, :, None])
    k = apply_rotary(self.k(x_BxTxD, key(2)).reshape(B, T, N, K), cos, sin)
    v = self.v(x_BxTxD, key(3)).reshape(B, T, N, K)
    new_cache = None
    if kv_cache is not None:
      ck, cv = kv_cache
      new_cache = (k.astype(ck.dtype), v.astype(cv.dtype))
      k = jax.lax.dynamic_update_slice(ck, new_cache[0], (0, index, 0, 0))
      v = jax.lax.dynamic_update_slice(cv, new_cache[1], (0, index, 0, 0))
    ctx = attention(q, k, v, dtype=dt, scale=cfg.query_pre_attn_scalar ** -0.5, mask=allowed_BxTxS,
                    softcap=cfg.attn_logit_softcapping, sliding_window=self.window, query_positions=positions_BxT,
                    key_positions=key_pos_BxS, dropout_rate=cfg.attention_dropout_rate, dropout_key=dropout_key,
                    impl=cfg.attention_impl, spec=spec)
    return self.o(ctx.reshape(B, T, H * K), key(4)), new_cache


class Layer(nnx.Module):
  """x + post_norm(attention(pre_norm(x))), then the same around the GeGLU feed-forward."""

  def __init__(self, cfg: Gemma2Config, window: int, rngs):
    norm = lambda: GemmaRMSNorm(cfg.hidden_size, cfg.rms_norm_eps, rngs=rngs, dtype=L.to_dtype(cfg.dtype),
                                param_dtype=L.to_dtype(cfg.param_dtype))
    self.attention_norm = norm()
    self.attention = Attention(cfg, window, rngs)
    self.post_attention_norm = norm()
    self.mlp_norm = norm()
    self.mlp = MLP(cfg, rngs)
    self.post_mlp_norm = norm()

  def __call__(self, x, cos, sin, allowed, positions, key_pos, kv_cache=None, index=None, dropout_key=None,
               spec: MaskSpec | None = None):
    h, new_cache = self.attention(self.attention_norm(x), cos, sin, allowed, positions, key_pos, kv_cache, index,
                                  dropout_key, spec)
    x = x + self.post_attention_norm(h)
    return x + self.post_mlp_norm(self.mlp(self.mlp_norm(x), L.fold(dropout_key, 5))), new_cache


class LayerPair(nnx.Module):
  """The repeating group: a local layer then a global one (what one scan step of the stack runs)."""

  def __init__(self, cfg: Gemma2Config, rngs):
    self.sliding = Layer(cfg, cfg.sliding_window, rngs)
    self.full = Layer(cfg, 0, rngs)


def _hidden(h):
  return constrain(h, ("batch", None, "embed"), "hidden state between layers")


class Gemma2(Decoder):
  """Scaled tied embedding, num_layers / 2 (local, global) pairs, final norm, soft-capped tied LM head."""

  def __init__(self, cfg: Gemma2Config, rngs: nnx.Rngs):
    self.cfg = cfg
    rngs = L.KeySequence(rngs)
    pdt = L.to_dtype(cfg.param_dtype)
    self.embed = L.param(rngs, L.normal(cfg.initializer_range), (cfg.vocab_size, cfg.hidden_size),
                         ("vocab", "embed"), pdt)
    self.layers = make_layers([LayerPair(cfg, rngs) for _ in range(cfg.num_layers // 2)], cfg.stacked_layers)
    self.final_norm = GemmaRMSNorm(cfg.hidden_size, cfg.rms_norm_eps, rngs=rngs, dtype=L.to_dtype(cfg.dtype),
                                   param_dtype=pdt)
    self.lm_head = None

  def logits(self, hidden_BxTxD):
    return softcap(super().logits(hidden_BxTxD), self.cfg.final_logit_softcapping)

  def __call__(self, input_ids_BxT, attention_mask_BxT=None, positions_BxT=None, *, cache: KVCache | None = None,
               with_logits: bool = True, dropout_key: jax.Array | None = None) -> DecoderOutput:
    """As `Decoder.__call__`; hidden states count layers, not pairs."""
    cfg = self.cfg
    s = causal_slots(input_ids_BxT, attention_mask_BxT, positions_BxT, cache)
    cos, sin = rotary(cfg, s.positions)
    table = self.embed[...]
    embedded = (jnp.take(table, input_ids_BxT, axis=0) * jnp.asarray(cfg.hidden_size ** 0.5, table.dtype))
    x = embedded = embedded.astype(L.to_dtype(cfg.dtype))
    ctx = (cos, sin, s.allowed, s.positions, s.key_positions)

    # The carry is (hidden state, the sliding layer's output): both are hidden states a caller may read.
    if cache is None:
      spec = MaskSpec(s.valid, causal=True)

      def call(pair, carry, g):
        h = _hidden(pair.sliding(carry[0], *ctx, dropout_key=L.fold(dropout_key, 2 * g), spec=spec)[0])
        return _hidden(pair.full(h, *ctx, dropout_key=L.fold(dropout_key, 2 * g + 1), spec=spec)[0]), h

      (x, _), pairs = run_layers(self.layers, (x, x), call, remat=cfg.remat)
      new_cache = None
    else:
      def cached(pair, carry, g):
        h, _, keys, values = carry
        mid = None
        for j, layer in enumerate((pair.sliding, pair.full)):
          i = 2 * jnp.asarray(g, jnp.int32) + j
          own = (jax.lax.dynamic_index_in_dim(keys, i, 0, False), jax.lax.dynamic_index_in_dim(values, i, 0, False))
          h, (k, v) = layer(h, *ctx, own, s.index)
          at = (i, 0, s.index, 0, 0)
          keys = jax.lax.dynamic_update_slice(keys, k[None], at)
          values = jax.lax.dynamic_update_slice(values, v[None], at)
          mid = h if mid is None else mid
        return h, mid, keys, values

      (x, _, keys, values), pairs = run_layers(self.layers, (x, x, cache.keys, cache.values), cached,
                                               keep=lambda carry: carry[:2])
      new_cache = s.advanced(keys, values)
    hidden = [h for mid_and_out in pairs for h in (mid_and_out[1], mid_and_out[0])]
    last = self.final_norm(x)
    hidden = (embedded,) + tuple(hidden[:-1]) + (last,)
    return DecoderOutput(self.logits(last) if with_logits else None, last, hidden, new_cache)
