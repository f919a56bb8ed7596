"""Running a stack of identical layers: unrolled or as one `lax.scan`, with rematerialisation.

Parameters stay stored per layer (`layers/0/...`, `layers/1/...`), so Hugging Face mapping,
checkpoints and per-layer learning rates do not depend on the switch. With `scan`, the layers'
parameters are stacked when the step is traced: XLA compiles one layer body instead of N (the
compile time of a 24-layer model drops accordingly), at the cost of one stacked copy of the layer
weights (and of their gradients) per step.

`remat` chooses what the backward pass keeps from the forward pass (`jax.checkpoint` policies):
`none` keeps everything, `full` recomputes each layer from its input, `dots_saveable` keeps matmul
outputs, `dots_with_no_batch_dims_saveable` keeps only matmuls without batch dimensions (the
weight products), `offload` moves those to host memory instead of recomputing them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

_policies = jax.checkpoint_policies
REMAT_POLICIES: dict[str, Callable | None] = {
    "full": None,
    "dots_saveable": _policies.dots_saveable,
    "dots_with_no_batch_dims_saveable": _policies.dots_with_no_batch_dims_saveable,
    "offload": _policies.offload_dot_with_no_batch_dims("device", "pinned_host"),
}
REMAT_CHOICES = ("none",) + tuple(REMAT_POLICIES)


def check_remat(name: str) -> str:
  if name not in REMAT_CHOICES:
    raise ValueError(f"remat must be one of {list(REMAT_CHOICES)}, got {name!r}")
  return name


def _rematted(fn: Callable, remat: str) -> Callable:
  if remat == "none":
    return fn
  return jax.checkpoint(fn, policy=REMAT_POLICIES[check_remat(remat)])


def run_layers(layers: Sequence[nnx.Module], x, call: Callable, scan: bool, remat: str):
  """Applies `call(layer, x, i) -> x` for i = 0..len(layers)-1; returns (x, [output of each layer]).

  `i` is a Python int when unrolled and a traced int32 inside the scan, so `call` may only use it
  for arithmetic such as folding it into a dropout key.
  """
  if not layers:
    return x, []
  if not scan and remat == "none":  # the plain loop, traced exactly as before the switches existed
    outs = []
    for i, layer in enumerate(layers):
      x = call(layer, x, i)
      outs.append(x)
    return x, outs
  graphdef = nnx.graphdef(layers[0])
  states = [nnx.state(layer) for layer in layers]

  def one(state, h, i):
    return call(nnx.merge(graphdef, state), h, i)

  one = _rematted(one, remat)
  if not scan or len(layers) == 1:
    outs = []
    for i, state in enumerate(states):
      x = one(state, x, i)
      outs.append(x)
    return x, outs
  stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *states)

  def body(h, xs):
    state, i = xs
    h = one(state, h, i)
    return h, h

  x, hs = jax.lax.scan(body, x, (stacked, jnp.arange(len(layers), dtype=jnp.int32)))
  return x, [hs[i] for i in range(len(layers))]
