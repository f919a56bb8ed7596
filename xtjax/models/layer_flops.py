"""FLOPs of one Transformer layer, the formulas the family configs' `stack_flops` add up.

Counting convention (as in the PaLM / Megatron MFU papers): a matmul [m, k] @ [k, n] costs 2*m*n*k
FLOPs; attention adds QK^T and PV (2*Q*S*H*K each per sequence); embedding lookups, normalisation,
activations and softmax count as free (`xtjax.perf.flops` adds heads and the backward pass).
"""

from __future__ import annotations


def encoder_layer_flops(hidden: int, ffn: int, seq_len: int, inner: int | None = None, gated: bool = False,
                        queries: int | None = None) -> int:
  """One self-attention + FFN layer over one sequence of `seq_len` tokens; `queries`: only the first
  positions are computed (keys and values still cover all `seq_len`)."""
  D, F, L = hidden, ffn, seq_len
  Q = L if queries is None else queries
  inner = inner or D
  proj = 2 * 2 * L * D * inner + 2 * 2 * Q * D * inner  # K, V over all tokens; Q, O over the queries
  attn = 2 * 2 * Q * L * inner
  mlp = (3 if gated else 2) * 2 * Q * D * F
  return proj + attn + mlp


def decoder_layer_flops(hidden: int, ffn: int, query_width: int, kv_width: int, tokens: int, keys: int) -> int:
  """One decoder-only layer (grouped-query attention, gated FFN): `tokens` new positions attending to
  `keys` positions (the causal mask's zeros count: they are computed)."""
  D, F, Q, KV, T, S = hidden, ffn, query_width, kv_width, tokens, keys
  return 2 * 2 * T * D * Q + 2 * 2 * T * D * KV + 2 * 2 * T * S * Q + 3 * 2 * T * D * F
