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


def param(rngs: nnx.Rngs | None, init, shape: Sequence[int], axes: Sequence[str | None], dtype) -> nnx.Param:
  """A parameter created by `init(key, shape, dtype)` carrying its logical axis names."""
  key = rngs.params() if rngs is not None else jax.random.key(0)
  return nnx.Param(init(key, tuple(shape), dtype), logical_axes=tuple(axes))


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


class Dense(nnx.Module):
  """y = x @ kernel + bias with kernel [in, out]; logical axes given by the caller."""

  def __init__(self, d_in: int, d_out: int, axes: tuple[str | None, str | None], *, rngs, dtype, param_dtype,
               stddev: float = 0.02, use_bias: bool = True):
    self.kernel = param(rngs, normal(stddev), (d_in, d_out), axes, param_dtype)
    self.bias = param(rngs, zeros, (d_out,), (axes[1],), param_dtype) if use_bias else None
    self.dtype = dtype

  def __call__(self, x):
    y = jnp.einsum("...i,io->...o", x.astype(self.dtype), self.kernel[...].astype(self.dtype))
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
