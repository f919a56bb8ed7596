"""T5 / mT5 / umT5 building blocks: relative position buckets, RMS norm, attention without biases or
1/sqrt(d_kv), the (gated) feed-forward, and the encoder and decoder layers (`xtjax.models.t5` stacks them)."""

from __future__ import annotations

import math
import jax
import jax.numpy as jnp
from flax import nnx

from xtjax.models import layers as L
from xtjax.models import remat as R
from xtjax.models.attention import NEG as _NEG
from xtjax.models.attention import attention
from xtjax.models.t5_config import T5Config


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

  remat_names = {"q": (None, R.QUERY), "k": (None, R.KEY), "v": (None, R.VALUE), "o": (R.CONTEXT, R.OUT)}

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
    """[1, H, Q, S] float32 learned bias for each (query, key) relative position bucket; per row
    [B, H, Q, S] from positions [B, Q] and [B, S] (packed rows: positions restart per segment)."""
    cfg = self.cfg
    if query_pos_Q.ndim == 2:
      buckets_BxQxS = relative_position_bucket(key_pos_S[:, None, :] - query_pos_Q[:, :, None], bidirectional,
                                               cfg.relative_attention_num_buckets, cfg.relative_attention_max_distance)
      values = jnp.take(self.relative_attention_bias[...], buckets_BxQxS, axis=0).astype(jnp.float32)
      return jnp.transpose(values, (0, 3, 1, 2))
    buckets_QxS = relative_position_bucket(key_pos_S[None, :] - query_pos_Q[:, None], bidirectional,
                                           cfg.relative_attention_num_buckets, cfg.relative_attention_max_distance)
    values_QxSxH = jnp.take(self.relative_attention_bias[...], buckets_QxS, axis=0).astype(jnp.float32)
    return jnp.transpose(values_QxSxH, (2, 0, 1))[None]

  def attend(self, q_BxQxHxK, k_BxSxHxK, v_BxSxHxK, bias_BxHxQxS, dropout_key=None):
    dt = L.to_dtype(self.cfg.dtype)
    ctx = attention(q_BxQxHxK, k_BxSxHxK, v_BxSxHxK, dtype=dt, bias=bias_BxHxQxS, dropout_rate=self.cfg.dropout_rate,
                    dropout_key=dropout_key, impl=self.cfg.attention_impl)
    return L.project(self, "o", "bqhk,hkd->bqd", ctx, dt, L.fold(dropout_key, 1))


class FeedForward(nnx.Module):
  """act(x wi_0) * (x wi_1) -> wo when gated (mT5, T5 v1.1), act(x wi) -> wo otherwise (T5 v1.0)."""

  remat_names = {"wi_0": (None, R.MLP_IN_0), "wi_1": (None, R.MLP_IN_1), "wi": (None, R.MLP_IN), "wo": (None, R.MLP_OUT)}

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
