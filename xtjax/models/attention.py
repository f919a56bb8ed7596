"""The one attention op every family calls: scores, soft-capping, masks, softmax, dropout, context.

Encoders (BERT/XLM-R), T5 and the decoder LLMs differ only in knobs: how scores are scaled (BERT divides
by sqrt(d), Llama multiplies by d**-0.5, T5 does neither, Gemma 2 multiplies by
query_pre_attn_scalar**-0.5), whether a bias is added (T5's relative positions, an encoder's padding)
or a boolean mask applied, logit soft-capping and a sliding window (Gemma 2). Each knob keeps the
operations its family ran before this op existed, in the same order, so their programs are unchanged.

`impl` picks the kernel; only "xla" (two einsums and a float32 softmax) exists so far.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from xtjax.models import layers as L

IMPLS = ("xla",)
NEG = float(jnp.finfo(jnp.float32).min)  # a masked score: exp underflows to exactly 0
# Query heads [B, Q, H, K] against keys [B, S, H, K]; grouped queries [B, Q, N, G, K] share key head N.
_SPECS = {4: ("bqhk,bshk->bhqs", "bhqs,bshk->bqhk"), 5: ("btngk,bsnk->bngts", "bngts,bsnk->btngk")}


def attention(q, k, v, *, dtype, scale: float | None = None, divide_by: float | None = None, bias=None,
              mask=None, softcap: float = 0.0, sliding_window: int = 0, query_positions=None, key_positions=None,
              dropout_rate: float = 0.0, dropout_key=None, impl: str = "xla"):
  """Context vectors in the query's layout ([B, Q, H, K], or [B, Q, N, G, K] for grouped queries).

  q: [B, Q, H, K] or [B, Q, N, G, K]; k, v: [B, S, H, K] or [B, S, N, K].
  scale: scores multiplied by it; divide_by: scores divided by it (BERT's / sqrt(d)); neither: raw (T5).
  bias: float added to the scores, broadcast to [B, H, Q, S] (T5's position bias, an encoder's padding).
  mask: bool [B, Q, S], True where a query may attend a key (scores elsewhere become `NEG`).
  softcap: scores -> softcap * tanh(scores / softcap) before masking (Gemma 2); 0: off.
  sliding_window: with query_positions [B, Q] and key_positions [B, S], a query sees only keys less than
  this many positions back (itself included); 0: no window.
  Probabilities are dropped out with `dropout_key` (None: evaluation) and cast to `dtype` before the context.
  """
  if impl not in IMPLS:
    raise ValueError(f"attention impl must be one of {list(IMPLS)}, got {impl!r}")
  score_spec, context_spec = _SPECS[q.ndim]
  scores = L.einsum(score_spec, q, k, dtype, jnp.float32)
  if divide_by is not None:
    scores = scores / divide_by
  if scale is not None:
    scores = scores * scale
  if softcap:
    scores = jnp.tanh(scores / softcap) * softcap
  if sliding_window:
    window = key_positions[:, None, :] > query_positions[:, :, None] - sliding_window
    mask = window if mask is None else mask & window
  if mask is not None:
    scores = jnp.where(mask[(slice(None),) + (None,) * (scores.ndim - 3)], scores, NEG)  # [B, 1.., Q, S]
  probs = jax.nn.softmax(scores if bias is None else scores + bias, axis=-1)
  probs = L.dropout(probs, dropout_rate, dropout_key).astype(dtype)
  return L.einsum(context_spec, probs, v, dtype)
