"""Shared building blocks: parameters with logical axes, dense, layer norm, dropout, activations.

Compute runs in the configured `dtype` (bf16 on TPU/GPU); layer norm and softmax always in f32.
Dropout takes an explicit key so a forward pass is a pure function of (params, batch, key).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from xtjax.models import remat

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def to_dtype(name) -> jnp.dtype:
  if not isinstance(name, str):
    return jnp.dtype(name)
  if name not in DTYPES:
    raise ValueError(f"unknown dtype {name!r}; expected one of {sorted(DTYPES)}")
  return DTYPES[name]


class KeySequence:
  """Parameter keys folded from one key of `rngs` (duck-types `nnx.Rngs.params()` for `param`).

  Drawing every key from `nnx.Rngs` updates its counter Variable, and under `eval_shape` each update
  inspects the whole trace so far, so abstract construction grows quadratically with the number of
  parameters (mT5-XXL: 11 s instead of ~1 s).
  """

  def __init__(self, rngs):
    if isinstance(rngs, KeySequence):
      self._key, self._count = rngs.params(), 0
      return
    self._key = rngs.params() if rngs is not None else jax.random.key(0)
    self._count = 0

  def params(self) -> jax.Array:
    self._count += 1
    return jax.random.fold_in(self._key, self._count)


def param(rngs: nnx.Rngs | None, init, shape: Sequence[int], axes: Sequence[str | None], dtype,
          fan_in_dims: int | None = None) -> nnx.Param:
  """A parameter created by `init(key, shape, dtype)` carrying its logical axis names.

  `fan_in_dims=k` marks a projection weight whose first k dims contract with the input (used through
  `project`): only such weights can carry a LoRA adapter (`xtjax.models.lora`)."""
  key = rngs.params() if rngs is not None else jax.random.key(0)
  meta = {"fan_in_dims": fan_in_dims} if fan_in_dims is not None else {}
  return nnx.Param(init(key, tuple(shape), dtype), logical_axes=tuple(axes), **meta)


def normal(stddev: float):
  return jax.nn.initializers.normal(stddev)


zeros = jax.nn.initializers.zeros
ones = jax.nn.initializers.ones


ACTIVATIONS = {
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
    "gelu_new": functools.partial(jax.nn.gelu, approximate=True),
    "gelu_pytorch_tanh": functools.partial(jax.nn.gelu, approximate=True),
    "gelu_fast": functools.partial(jax.nn.gelu, approximate=True),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "tanh": jnp.tanh,
}


def activation(name: str):
  if name not in ACTIVATIONS:
    raise ValueError(f"unsupported activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
  return ACTIVATIONS[name]


def _grad_specs(spec: str) -> tuple[str, str]:
  """Einsum specs of the two operands' gradients: `a` from (g, b), `b` from (a, g)."""
  ins, out = spec.replace(" ", "").split("->")
  a, b = ins.split(",")
  return f"{out},{b}->{a}", f"{a},{out}->{b}"


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 3))
def _lowp_einsum(spec, a, b, out_dtype):
  return jnp.einsum(spec, a, b, preferred_element_type=jnp.float32).astype(out_dtype)


def _lowp_einsum_fwd(spec, a, b, out_dtype):
  return _lowp_einsum(spec, a, b, out_dtype), (a, b)


def _lowp_einsum_bwd(spec, out_dtype, res, g):
  a, b = res
  g = g.astype(a.dtype)  # the cotangent in the compute dtype, like the forward's operands
  spec_a, spec_b = _grad_specs(spec)
  da = jnp.einsum(spec_a, g, b, preferred_element_type=jnp.float32).astype(a.dtype)
  db = jnp.einsum(spec_b, a, g, preferred_element_type=jnp.float32).astype(b.dtype)
  return da, db


_lowp_einsum.defvjp(_lowp_einsum_fwd, _lowp_einsum_bwd)


def einsum(spec: str, a, b, dtype, out_dtype=None):
  """Two-operand `jnp.einsum` of `dtype` operands, accumulated in float32, result in `out_dtype`
  (default `dtype`). Every index of an operand must appear in the other operand or the output.

  Below float32 (bf16), products with a parameter (no batch index) also run their backward pass on
  `dtype` operands (the cotangent cast to `dtype`) with float32 accumulation, as mixed-precision
  training does; float32 is a plain einsum.
  Why: on XLA:CPU (jaxlib 0.10) bf16 x bf16 -> f32 dots run on YNNPACK's bf16 kernels at ~450-570
  GFLOP/s on 2 cores, against ~100 for bf16 -> bf16 or mixed f32 x bf16 dots (2048x256x1024);
  accelerators accumulate bf16 products in f32 anyway.
  Products without a batch index (activation x weight) are named `remat.WEIGHT_DOT` for remat policies.
  """
  dtype = jnp.dtype(dtype)
  out_dtype = jnp.dtype(out_dtype or dtype)
  a, b = a.astype(dtype), b.astype(dtype)
  if _has_batch_index(spec):
    # Batched (attention) products keep autodiff's backward (f32 cotangents): XLA:CPU's YNNPACK
    # rewrite leaves some transposed batched bf16 x bf16 -> f32 dots to a runtime that cannot run them.
    return jnp.einsum(spec, a, b, preferred_element_type=jnp.float32).astype(out_dtype)
  if dtype == jnp.float32:
    y = jnp.einsum(spec, a, b, preferred_element_type=jnp.float32).astype(out_dtype)
  else:
    y = _lowp_einsum(spec, a, b, out_dtype)
  return remat.name(y, remat.WEIGHT_DOT)  # the custom VJP hides the dot from XLA's dot-saving policies


def _has_batch_index(spec: str) -> bool:
  ins, out = spec.replace(" ", "").replace("...", "").split("->")
  a, b = ins.split(",")
  return bool(set(a) & set(b) & set(out))


LORA_SUFFIX = "_lora"  # the adapter of weight `query` is the sibling module `query_lora`


@functools.lru_cache(maxsize=None)
def lora_specs(spec: str, fan_in_dims: int) -> tuple[str, str]:
  """Einsum specs of the adapter path of `spec` (input x weight, the weight's first `fan_in_dims`
  indices contracted): x A -> h (rank index added), h B -> out. "bld,dhk->blhk" gives
  ("bld,dr->blr", "blr,rhk->blhk"); "bqhk,hkd->bqd" gives ("bqhk,hkr->bqr", "bqr,rd->bqd")."""
  ins, out = spec.replace(" ", "").split("->")
  x, w = ins.split(",")
  w_in, w_out = w[:fan_in_dims], w[fan_in_dims:]
  if any(c not in x or c in out for c in w_in) or any(c in x or c not in out for c in w_out):
    raise ValueError(f"einsum {spec!r}: the weight's first {fan_in_dims} indices must contract with the input "
                     "and the others reach the output, for a LoRA adapter")
  r = next(c for c in "rRzZ" if c not in spec)
  mid = "".join(c for c in x if c not in w_in) + r
  return f"{x},{w_in}{r}->{mid}", f"{mid},{r}{w_out}->{out}"


class LoraAdapter(nnx.Module):
  """LoRA (Hu et al., 2021) for one projection weight W [in..., out...]: W + (alpha / rank) * A B with
  A [in..., rank] (Kaiming-uniform, as peft) and B [rank, out...] zero-initialised, so training starts
  from the base model. A and B carry the weight's logical axes plus `lora_rank` (replicated), so they
  shard like W. Applied on the activation path, y += s * (dropout(x) A) B, never by forming W + s A B."""

  def __init__(self, weight: nnx.Param, rank: int, alpha: float, dropout: float, *, rngs):
    meta, value = weight.get_metadata(), weight.get_value()
    k, shape, dtype = meta["fan_in_dims"], value.shape, value.dtype
    axes = meta.get("logical_axes") or (None,) * len(shape)
    bound = jax.nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform", in_axis=tuple(range(k)), out_axis=k)
    self.a = param(rngs, bound, (*shape[:k], rank), (*axes[:k], "lora_rank"), dtype)
    self.b = param(rngs, zeros, (rank, *shape[k:]), ("lora_rank", *axes[k:]), dtype)
    self.fan_in_dims, self.scale, self.dropout = k, alpha / rank, dropout

  def __call__(self, spec: str, x, dtype, dropout_key=None):
    spec_a, spec_b = lora_specs(spec, self.fan_in_dims)
    h = einsum(spec_a, dropout(x, self.dropout, dropout_key), self.a[...], dtype)
    return einsum(spec_b, h, self.b[...], dtype) * jnp.asarray(self.scale, dtype)


def project(module: nnx.Module, name: str, spec: str, x, dtype, dropout_key=None, out_dtype=None):
  """`einsum(spec, x, module.<name>)`, plus its LoRA adapter's term when `module` carries one
  (`dropout_key`: the adapter's dropout, unused without an adapter).

  A module may declare `remat_names = {weight: (input name, output name)}` (`xtjax.models.remat`'s names,
  None for unnamed): the projection's input and output are then named for the remat policies."""
  in_name, out_name = dict(getattr(module, "remat_names", ())).get(name, (None, None))
  x = remat.name(x, in_name)
  y = einsum(spec, x, getattr(module, name)[...], dtype, out_dtype)
  adapter = getattr(module, name + LORA_SUFFIX, None)
  if adapter is not None:
    y = y + adapter(spec, x, dtype, dropout_key).astype(y.dtype)
  return remat.name(y, out_name)


class Dense(nnx.Module):
  """y = x @ kernel + bias with kernel [in, out]; logical axes given by the caller."""

  def __init__(self, d_in: int, d_out: int, axes: tuple[str | None, str | None], *, rngs, dtype, param_dtype,
               stddev: float = 0.02, use_bias: bool = True, remat_names: tuple[str | None, str | None] = (None, None)):
    self.kernel = param(rngs, normal(stddev), (d_in, d_out), axes, param_dtype, fan_in_dims=1)
    if remat_names != (None, None):  # (input, output) names of the projection for remat policies
      self.remat_names = (("kernel", tuple(remat_names)),)  # hashable: it is part of the module's static graph
    self.bias = param(rngs, zeros, (d_out,), (axes[1],), param_dtype) if use_bias else None
    self.dtype = dtype

  def __call__(self, x, dropout_key=None):
    y = project(self, "kernel", "...i,io->...o", x, self.dtype, dropout_key)
    if self.bias is not None:
      y = y + self.bias[...].astype(self.dtype)
    return y


class LayerNorm(nnx.Module):
  """Layer norm computed in f32, output cast back to the compute dtype."""

  def __init__(self, dim: int, eps: float, *, rngs, dtype, param_dtype):
    self.scale = param(rngs, ones, (dim,), ("norm",), param_dtype)
    self.bias = param(rngs, zeros, (dim,), ("norm",), param_dtype)
    self.eps = eps
    self.dtype = dtype

  def __call__(self, x):
    x32 = x.astype(jnp.float32)
    mean = jnp.mean(x32, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
    y = (x32 - mean) * jax.lax.rsqrt(var + self.eps)
    y = y * self.scale[...].astype(jnp.float32) + self.bias[...].astype(jnp.float32)
    return y.astype(self.dtype)


def dropout(x, rate: float, key: jax.Array | None):
  """Inverted dropout; identity when `key` is None (evaluation) or rate is 0."""
  if key is None or rate <= 0.0:
    return x
  keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
  return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


def fold(key: jax.Array | None, *data: int) -> jax.Array | None:
  """Derives a sub-key deterministically (None stays None, meaning no dropout)."""
  if key is None:
    return None
  for d in data:
    key = jax.random.fold_in(key, d)
  return key


def last_attended(attention_mask_BxL) -> jax.Array:
  """[B] index of each row's rightmost attended position (0 for a row attending nothing), for right
  and left padding alike: where a causal decoder has read the whole sequence."""
  L = attention_mask_BxL.shape[-1]
  return jnp.argmax(jnp.where(attention_mask_BxL > 0, jnp.arange(L), -1), axis=-1).astype(jnp.int32)
