"""The one attention op every family calls: scores, soft-capping, masks, softmax, dropout, context.

Encoders (BERT/XLM-R), T5 and the decoder LLMs differ only in knobs: how scores are scaled (BERT divides
by sqrt(d), Llama multiplies by d**-0.5, T5 does neither, Gemma 2 multiplies by
query_pre_attn_scalar**-0.5), whether a bias is added (T5's relative positions, an encoder's padding)
or a boolean mask applied, logit soft-capping and a sliding window (Gemma 2). Each knob keeps the
operations its family ran before this op existed, in the same order, so their programs are unchanged.

`impl` picks the kernel (a model config's `attention_impl`):
  xla          two einsums and a float32 softmax (the default; every case).
  dot_product  `jax.nn.dot_product_attention`: cuDNN flash attention on GPU (bf16/f16, no dropout, no
               soft-cap), its XLA form elsewhere; reads the same dense mask and bias as "xla".
  pallas       the Pallas TPU splash kernel (`attention_kernels.splash`): causal or full masks, padding as
               segment ids, sliding windows, soft-capping, grouped queries; no bias (T5's relative
               positions), no dropout, no KV-cache decoding. Off TPU it runs in Pallas' interpret mode.
  auto         per backend and call: "pallas" on TPU and "dot_product" on GPU where the case allows,
               "xla" otherwise (CPU always).
An impl named explicitly that cannot run a case raises one line saying why; nothing falls back silently.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from xtjax.models import attention_kernels as K
from xtjax.models import layers as L
from xtjax.models.attention_kernels import Call, MaskSpec
from xtjax.parallel.rules import active_platform

IMPLS = ("xla", "dot_product", "pallas", "auto")
NEG = float(jnp.finfo(jnp.float32).min)  # a masked score: exp underflows to exactly 0
# Query heads [B, Q, H, K] against keys [B, S, H, K]; grouped queries [B, Q, N, G, K] share key head N.
_SPECS = {4: ("bqhk,bshk->bhqs", "bhqs,bshk->bqhk"), 5: ("btngk,bsnk->bngts", "bngts,bsnk->btngk")}


def check_impl(impl: str, where: str = "attention_impl") -> None:
  if impl not in IMPLS:
    raise ValueError(f"{where} must be one of {list(IMPLS)}, got {impl!r}")


def window_mask(mask, sliding_window: int, query_positions, key_positions):
  """`mask` [B, Q, S] and the sliding window over positions (a query sees keys < window back)."""
  if not sliding_window:
    return mask
  window = key_positions[:, None, :] > query_positions[:, :, None] - sliding_window
  return window if mask is None else mask & window


def _xla(q, k, v, *, dtype, scale, divide_by, bias, mask, softcap, sliding_window, query_positions, key_positions,
         dropout_rate, dropout_key):
  score_spec, context_spec = _SPECS[q.ndim]
  scores = L.einsum(score_spec, q, k, dtype, jnp.float32)
  if divide_by is not None:
    scores = scores / divide_by
  if scale is not None:
    scores = scores * scale
  if softcap:
    scores = jnp.tanh(scores / softcap) * softcap
  mask = window_mask(mask, sliding_window, query_positions, key_positions)
  if mask is not None:
    scores = jnp.where(mask[(slice(None),) + (None,) * (scores.ndim - 3)], scores, NEG)  # [B, 1.., Q, S]
  probs = jax.nn.softmax(scores if bias is None else scores + bias, axis=-1)
  probs = L.dropout(probs, dropout_rate, dropout_key).astype(dtype)
  return L.einsum(context_spec, probs, v, dtype)


def choose(impl: str, call: Call, backend: str | None = None) -> str:
  """The implementation that runs `call`: `impl` itself when it can (else one-line ValueError), or
  for "auto" the fused kernel of this backend when it can, else "xla"."""
  backend = backend or active_platform()
  if impl == "auto":
    fused = {"tpu": "pallas", "gpu": "dot_product"}.get(backend)
    return fused if fused and K.why_not(fused, call, backend) is None else "xla"
  if impl != "xla":
    why = K.why_not(impl, call, backend)
    if why is not None:
      raise ValueError(f"attention_impl {impl!r} cannot run this attention: {why}")
  return impl


def attention(q, k, v, *, dtype, scale: float | None = None, divide_by: float | None = None, bias=None,
              mask=None, softcap: float = 0.0, sliding_window: int = 0, query_positions=None, key_positions=None,
              dropout_rate: float = 0.0, dropout_key=None, impl: str = "xla", spec: MaskSpec | None = None):
  """Context vectors in the query's layout ([B, Q, H, K], or [B, Q, N, G, K] for grouped queries).

  q: [B, Q, H, K] or [B, Q, N, G, K]; k, v: [B, S, H, K] or [B, S, N, K].
  scale: scores multiplied by it; divide_by: scores divided by it (BERT's / sqrt(d)); neither: raw (T5).
  bias: float added to the scores, broadcast to [B, H, Q, S] (T5's position bias, an encoder's padding).
  mask: bool [B, Q, S], True where a query may attend a key (scores elsewhere become `NEG`).
  softcap: scores -> softcap * tanh(scores / softcap) before masking (Gemma 2); 0: off.
  sliding_window: with query_positions [B, Q] and key_positions [B, S], a query sees only keys less than
  this many positions back (itself included); 0: no window.
  Probabilities are dropped out with `dropout_key` (None: evaluation) and cast to `dtype` before the context.
  impl: see the module docstring; spec: the masking in structural form (`MaskSpec`) for the fused kernels.
  """
  check_impl(impl, "attention impl")
  einsum_path = dict(dtype=dtype, scale=scale, divide_by=divide_by, bias=bias, mask=mask, softcap=softcap,
                     sliding_window=sliding_window, query_positions=query_positions, key_positions=key_positions,
                     dropout_rate=dropout_rate, dropout_key=dropout_key)
  if impl == "xla":  # the einsum path as it always was (its programs are unchanged)
    return _xla(q, k, v, **einsum_path)
  factor = (1.0 if scale is None else scale) / (1.0 if divide_by is None else divide_by)
  if spec is not None and sliding_window and not spec.window:
    spec = spec._replace(window=sliding_window)
  call = Call(q, k, v, jnp.dtype(dtype), factor, bias, window_mask(mask, sliding_window, query_positions,
              key_positions), softcap, dropout_rate > 0 and dropout_key is not None,
              spec)
  chosen = choose(impl, call)
  if chosen == "xla":
    return _xla(q, k, v, **einsum_path)
  return K.run(chosen, call)
