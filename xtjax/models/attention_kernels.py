"""The fused attention implementations behind `attention.attention`: `jax.nn.dot_product_attention`
(cuDNN flash attention on GPU) and the Pallas TPU splash kernel. Each says why it cannot run a call
(`why_not`, one line) before it is asked to (`run`); `attention.choose` reads that. `MaskSpec` and
`Call` are what a call hands them.

Splash takes what a mask needs as structure, not as a [B, Q, S] array (`MaskSpec`): causal and
sliding-window blocks are skipped, padding is segment ids (a query's segment is 1, a valid key's 1, a
padding key's 0, so a padding query attends the valid keys as the einsum path has it). Sequences are
padded to its block size (a multiple of 128) and the padding sliced off. Under `activation_sharding`
it runs per shard (`shard_map` over batch and heads), as a Pallas call cannot be partitioned by XLA.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from xtjax.parallel.rules import active_platform, active_spec

_INTERPRET: contextvars.ContextVar[bool] = contextvars.ContextVar("pallas_interpret", default=False)
MAX_BLOCK = 512  # splash block (queries and keys); shorter sequences use one block of their rounded length


class MaskSpec(NamedTuple):
  """The masking that a call's `mask` / `bias` applies, in the form the fused kernels take.

  A caller gives it only when `mask` (and `bias`, if any) apply exactly this and nothing else: a query
  sees the keys where `key_valid`, and with `causal` only slots up to its own (query t at key slot t: no
  KV cache), and with `window` only the last `window` slots, itself included. The einsum path ignores it."""

  key_valid: jax.Array  # [B, S] bool
  causal: bool = False
  window: int = 0


class Call(NamedTuple):
  """What an implementation needs to know about one call (shapes are static under tracing)."""

  q: jax.Array
  k: jax.Array
  v: jax.Array
  dtype: jnp.dtype
  scale: float  # the scores' multiplier (divide_by folded in)
  bias: jax.Array | None
  mask: jax.Array | None  # [B, Q, S] bool, the sliding window included
  softcap: float
  dropout: bool  # probabilities are dropped out
  spec: MaskSpec | None


@contextlib.contextmanager
def pallas_interpret():
  """Runs the Pallas TPU kernel in Pallas' interpret mode while tracing inside (CPU tests)."""
  token = _INTERPRET.set(True)
  try:
    yield
  finally:
    _INTERPRET.reset(token)


def _dot_product_why_not(call: Call, backend: str) -> str | None:
  if call.softcap:
    return "soft-capped scores (Gemma 2) are no option of jax.nn.dot_product_attention"
  if call.dropout:
    return "attention dropout is on (attention_dropout_rate > 0 while training); jax.nn.dot_product_attention has none"
  if backend == "gpu":
    head_dim = call.q.shape[-1]
    if call.dtype not in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16)):
      return f"cuDNN flash attention takes bfloat16 or float16, the model computes in {call.dtype.name}"
    if head_dim % 8 or head_dim > 256:
      return f"cuDNN flash attention takes head dims <= 256 and a multiple of 8, got {head_dim}"
  return None


def _splash_why_not(call: Call, backend: str) -> str | None:
  if backend != "tpu" and not _INTERPRET.get():
    return f"the Pallas TPU kernel needs a TPU (the backend is {backend})"
  if call.dropout:
    return "attention dropout is on (attention_dropout_rate > 0 while training); the splash kernel has none"
  if call.spec is None and call.bias is not None:
    return "an additive score bias (T5's relative position bias) is no input of the splash kernel"
  if call.spec is None and call.mask is not None:
    return "the mask has no structural form (KV-cache decoding attends a cache, not a causal block)"
  if call.spec is not None and call.spec.causal and call.q.shape[1] != call.k.shape[1]:
    return f"a causal mask with {call.q.shape[1]} queries over {call.k.shape[1]} keys"
  return None


_WHY_NOT = {"dot_product": _dot_product_why_not, "pallas": _splash_why_not}


def why_not(impl: str, call: Call, backend: str) -> str | None:
  """Why `impl` cannot run `call` on `backend` (one line), or None."""
  return _WHY_NOT[impl](call, backend)


def run(impl: str, call: Call):
  return {"dot_product": dot_product, "pallas": splash}[impl](call)


def _heads_last_to_flat(q):
  """[B, Q, N, G, K] grouped queries -> [B, Q, N*G, K] (head n*G + g reads key head n, as both kernels do)."""
  return q.reshape(q.shape[:2] + (-1, q.shape[-1])) if q.ndim == 5 else q


def dot_product(call: Call):
  """`jax.nn.dot_product_attention` over the call's dense mask and bias: cuDNN on GPU, XLA elsewhere."""
  q = _heads_last_to_flat(call.q).astype(call.dtype)
  k, v = call.k.astype(call.dtype), call.v.astype(call.dtype)
  cudnn = active_platform() == "gpu"
  bias = call.bias
  if bias is not None and cudnn:  # cuDNN adds the bias in the inputs' dtype: keep masked scores finite there
    bias = jnp.maximum(bias, 0.7 * float(jnp.finfo(call.dtype).min)).astype(call.dtype)
  mask = None if call.mask is None else call.mask[:, None]
  try:
    out = jax.nn.dot_product_attention(q, k, v, bias=bias, mask=mask, scale=call.scale,
                                       is_causal=bool(call.spec is not None and call.spec.causal),
                                       implementation="cudnn" if cudnn else None)
  except (NotImplementedError, ValueError, RuntimeError) as e:  # cuDNN's own shape/version checks
    reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise ValueError(f"attention_impl 'dot_product' cannot run this attention: {reason}") from None
  return out.reshape(call.q.shape).astype(call.dtype)


def _round_up(n: int, m: int) -> int:
  return -(-n // m) * m


def block_size(length: int) -> int:
  return min(MAX_BLOCK, _round_up(length, 128))


@functools.lru_cache(maxsize=64)
def _splash_kernel(heads: int, q_len: int, kv_len: int, block_q: int, block_kv: int, causal: bool, window: int,
                   softcap: float, interpret: bool):
  from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk
  from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as sm

  shape = (q_len, kv_len)
  if causal and window:
    one = sm.LocalMask(shape, window_size=(window - 1, 0), offset=0)
  elif causal:
    one = sm.CausalMask(shape)
  else:
    one = sm.FullMask(shape)
  blocks = sk.BlockSizes(block_q=block_q, block_kv=block_kv, block_kv_compute=block_kv, block_q_dkv=block_q,
                         block_kv_dkv=block_kv, block_kv_dkv_compute=block_kv, block_q_dq=block_q,
                         block_kv_dq=block_kv)
  return sk.make_splash_mha(sm.MultiHeadMask([one] * heads), block_sizes=blocks, head_shards=1, q_seq_shards=1,
                            attn_logits_soft_cap=softcap or None, interpret=interpret)


def splash(call: Call):
  """The splash kernel over [B, heads, length, head_dim] operands, batch mapped by `vmap`."""
  from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk

  B, Q = call.q.shape[:2]
  S = call.k.shape[1]
  spec = call.spec
  causal = bool(spec is not None and spec.causal)
  window = spec.window if spec is not None else 0
  block_q, block_kv = (block_size(max(Q, S)),) * 2 if causal else (block_size(Q), block_size(S))
  Qp, Sp = _round_up(Q, block_q), _round_up(S, block_kv)
  if causal:
    Qp = Sp = max(Qp, Sp)
  q = _heads_last_to_flat(call.q)
  if call.scale != 1.0:  # the kernel takes no scale: scale the queries (in float32, then back)
    q = (q.astype(jnp.float32) * call.scale).astype(call.dtype)
  q = jnp.pad(jnp.swapaxes(q.astype(call.dtype), 1, 2), ((0, 0), (0, 0), (0, Qp - Q), (0, 0)))  # [B, H, Qp, K]
  k, v = (jnp.pad(jnp.swapaxes(x.astype(call.dtype), 1, 2), ((0, 0), (0, 0), (0, Sp - S), (0, 0)))
          for x in (call.k, call.v))  # [B, N, Sp, K]
  valid = jnp.ones((B, S), bool) if spec is None else spec.key_valid
  segments = None
  if spec is not None or Sp != S:
    segments = (jnp.ones((B, Qp), jnp.int32), jnp.pad(valid.astype(jnp.int32), ((0, 0), (0, Sp - S))))
  interpret = _INTERPRET.get()

  def per_shard(q, k, v, segments):
    kernel = _splash_kernel(q.shape[1], Qp, Sp, block_q, block_kv, causal, window, float(call.softcap), interpret)
    ids = None if segments is None else sk.SegmentIds(*segments)
    return jax.vmap(kernel)(q, k, v, segment_ids=ids)

  head_name = "kv_heads" if call.q.ndim == 5 else "heads"
  pinned = active_spec(("batch", head_name, None, None), k.shape, "attention keys (splash)")
  if pinned is None:
    out = per_shard(q, k, v, segments)
  else:
    mesh, kv_spec = pinned
    kv_spec = jax.sharding.PartitionSpec(*(tuple(kv_spec) + (None,) * (4 - len(kv_spec))))
    batch = jax.sharding.PartitionSpec(kv_spec[0], None)
    seg_specs = None if segments is None else (batch, batch)
    out = jax.shard_map(per_shard, mesh=mesh, in_specs=(kv_spec, kv_spec, kv_spec, seg_specs), out_specs=kv_spec,
                        check_vma=False)(q, k, v, segments)
  out = jnp.swapaxes(out[:, :, :Q], 1, 2)  # [B, Q, H, K]
  return out.reshape(call.q.shape).astype(call.dtype)

