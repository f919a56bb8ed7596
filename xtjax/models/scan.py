"""A stack of identical layers: stored per layer or stacked, run unrolled or as one `lax.scan`, with remat.

Two layouts of the same parameters (the model config's `scan_layers` chooses):
- per layer, an `nnx.List`: `layers/0/attention/query` [D, H, K], `layers/1/...`; run unrolled.
- stacked, a `LayerStack`: `layers/stacked/attention/query` [N, D, H, K] with the leading logical axis
  `layers` (mapped to no mesh axis), plus `layers/first/<i>/...` for leading layers that differ in
  structure (T5's first layer holds the shared relative position bias). One `lax.scan` runs the
  stacked layers: XLA compiles one layer body and the optimizer updates a few stacked tensors.

Under a mesh (`parallel.rules.activation_sharding`, entered by the train step) each layer's input and
output are constrained to the batch split and a scanned layer's weights to their per-layer sharding, so
XLA gathers one layer's weights per scan step (FSDP) rather than keeping activations for the whole batch.

Both layouts are built layer by layer from the same keys, so a seed gives the same weights either way.
Hugging Face mapping and regex rules (freezing, layer-wise learning rates) see the per-layer view
(`to_per_layer`); checkpoints convert between the layouts with `to_layout`.

`remat` chooses what the backward pass keeps from the forward pass: a policy of `xtjax.models.remat`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from xtjax.models.remat import POLICIES, REMAT_CHOICES, check_remat  # noqa: F401 (the models' import)
from xtjax.parallel.rules import constrain

LAYERS_AXIS = "layers"  # the logical name of the stacked layers' leading axis
SCAN_BY_DEFAULT_FROM = 12  # `scan_layers: null` stacks models with at least this many layers (the choice)


def use_scan(scan_layers: bool | None, num_layers: int) -> bool:
  """A config's `scan_layers`, with None meaning: on for models of `SCAN_BY_DEFAULT_FROM` layers or more."""
  return bool(scan_layers) if scan_layers is not None else num_layers >= SCAN_BY_DEFAULT_FROM


def _rematted(fn: Callable, remat: str, in_scan: bool) -> Callable:
  if remat == "none":
    return fn
  # Inside a scan the loop already keeps XLA from merging the recomputation with the forward pass
  # (JAX's advice for remat under scan); unrolled, `prevent_cse` keeps the recomputation.
  return jax.checkpoint(fn, policy=POLICIES[check_remat(remat)].policy, prevent_cse=not in_scan)


def stack_modules(modules: Sequence[nnx.Module]) -> nnx.Module:
  """The first of identically built modules, its variables replaced by all of theirs stacked along a
  leading `layers` axis (logical axes prefixed), for `lax.scan` to slice one module per step."""
  flats = [dict(nnx.to_flat_state(nnx.state(m))) for m in modules]
  for path, var in flats[0].items():
    var.set_value(jnp.stack([f[path].get_value() for f in flats]))
    axes = var.get_metadata().get("logical_axes")
    if axes is not None:
      var.set_metadata("logical_axes", (LAYERS_AXIS,) + tuple(axes))
  return modules[0]


class LayerStack(nnx.Module):
  """Layers `first..n-1` stacked along a leading `layers` axis; layers `0..first-1` kept per layer."""

  def __init__(self, layers: Sequence[nnx.Module], first: int = 0):
    if len(layers) <= first:
      raise ValueError(f"LayerStack: {len(layers)} layers, {first} of them kept apart: nothing to stack")
    self.first = nnx.List(list(layers[:first]))
    rest = list(layers[first:])
    self.stacked = stack_modules(rest)
    self.num_stacked = len(rest)

  def __len__(self) -> int:
    return len(self.first) + self.num_stacked

  def _stacked_state(self, lo: int, hi: int):
    """(graphdef, state of stacked layers lo..hi-1 with their leading axis)."""
    graphdef, state = nnx.split(self.stacked)
    k = len(self.first)
    if (lo, hi) != (k, len(self)):
      state = jax.tree.map(lambda a: a[lo - k:hi - k], state)
    return graphdef, state

  def layer(self, i: int) -> nnx.Module:
    """Layer i as a module (a stacked layer's parameters sliced out)."""
    if i < len(self.first):
      return self.first[i]
    graphdef, state = self._stacked_state(i, i + 1)
    return nnx.merge(graphdef, jax.tree.map(lambda a: a[0], state))


def make_layers(layers: Sequence[nnx.Module], stacked: bool, first: int = 0):
  """The model attribute holding a layer stack: an `nnx.List` (per layer) or a `LayerStack`."""
  return LayerStack(layers, first) if stacked and len(layers) > first else nnx.List(list(layers))


def layer_at(layers, i: int) -> nnx.Module:
  return layers.layer(i) if isinstance(layers, LayerStack) else layers[i]


def _hidden(h):
  """A layer's input or output [B, ..., D] split over the batch (by the rules' `batch`), under a mesh.
  A pytree carry (the decoder's cached decoding: hidden states with the stacked KV cache) is left as
  it is: decoding is not traced under `activation_sharding`."""
  if not isinstance(h, jax.Array):
    return h
  return constrain(h, ("batch",) + (None,) * (h.ndim - 2) + ("embed",), "hidden state between layers")


def _one_layer_weights(state):
  """One layer's weights sliced from the stack, constrained to their per-layer sharding (logical axes
  less `layers`), as t5x/MaxText's scanned layers are: XLA then gathers one layer per scan step and
  reduce-scatters its gradient there, instead of choosing its own layout for the whole stack."""

  def one(v):
    axes = v.get_metadata().get("logical_axes")
    if axes is None:
      return v
    value = v.get_value()
    return v.replace(constrain(value, tuple(axes)[len(axes) - value.ndim:], "stacked layer weight"))

  return jax.tree.map(one, state, is_leaf=lambda x: isinstance(x, nnx.Variable))


def _per_layer_loop(items, x, one, keep=None):
  outs = []
  for i, item in items:
    x = _hidden(one(item, _hidden(x), i))
    outs.append(x if keep is None else keep(x))
  return x, outs


def _scan(graphdef, state, x, call, remat: str, start: int, n: int, keep=None):
  if remat == "none":  # the weights' per-layer sharding constraint before the layer (autodiff keeps all it needs)
    weights, one = _one_layer_weights, lambda st, h, i: call(nnx.merge(graphdef, st), h, i)
  else:  # the constraint inside the rematerialised function: outside it, its outputs (every layer's weights, LoRA's
    # frozen ones as bf16 casts) were residuals of the scan, stacked for the backward pass under every policy
    weights = lambda st: st  # noqa: E731
    one = _rematted(lambda st, h, i: call(nnx.merge(graphdef, _one_layer_weights(st)), h, i), remat, in_scan=True)

  def body(h, xs):
    st, i = xs
    h = _hidden(one(weights(st), _hidden(h), i))
    return h, (h if keep is None else keep(h))

  x, hs = jax.lax.scan(body, x, (state, start + jnp.arange(n, dtype=jnp.int32)))
  return x, [jax.tree.map(lambda a, j=j: a[j], hs) for j in range(n)]


def run_layers(layers, x, call: Callable, scan: bool = False, remat: str = "none", start: int = 0,
               stop: int | None = None, keep: Callable | None = None):
  """Applies `call(layer, x, i) -> x` for i = start..stop-1; returns (x, [output of each layer]).

  `x` may be a pytree (e.g. hidden states with a stacked KV cache updated in place); `keep(x)` picks
  what the per-layer outputs hold (all of `x` by default).

  `layers`: a `LayerStack` (its stacked layers run as one `lax.scan`) or a sequence of modules (run
  unrolled; `scan=True` stacks their parameters at trace time instead, the older way). `i` is a Python
  int when unrolled and a traced int32 inside the scan, so `call` may only use it for arithmetic such
  as folding it into a dropout key.
  """
  stop = len(layers) if stop is None else stop
  if stop <= start:
    return x, []
  if isinstance(layers, LayerStack):
    k = len(layers.first)
    x, outs = _per_layer_loop([(i, layers.first[i]) for i in range(start, min(stop, k))], x,
                              _module_rematted(call, remat), keep)
    lo = max(start, k)
    if stop <= lo:
      return x, outs
    graphdef, state = layers._stacked_state(lo, stop)
    if stop - lo == 1:
      x, more = _per_layer_loop([(lo, jax.tree.map(lambda a: a[0], state))], x,
                                _state_call(graphdef, call, remat), keep)
    else:
      x, more = _scan(graphdef, state, x, call, remat, lo, stop - lo, keep)
    return x, outs + more
  items = [(i, layers[i]) for i in range(start, stop)]
  if not scan and remat == "none":  # the plain loop, traced exactly as before the switches existed
    return _per_layer_loop(items, x, call, keep)
  if not scan or len(items) == 1:
    return _per_layer_loop(items, x, _module_rematted(call, remat), keep)
  graphdef = nnx.graphdef(items[0][1])
  stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *[nnx.state(m) for _, m in items])
  return _scan(graphdef, stacked, x, call, remat, start, len(items), keep)


def _state_call(graphdef, call, remat):
  """`call` on a layer given as its state, rematerialised as a function of the state."""
  return _rematted(lambda st, h, i: call(nnx.merge(graphdef, st), h, i), remat, in_scan=False)


def _module_rematted(call, remat):
  if remat == "none":
    return call

  def one(module, h, i):
    graphdef, state = nnx.split(module)
    return _state_call(graphdef, call, remat)(state, h, i)

  return one


# ---- the two layouts as nested dicts (pure params, optimizer moments, checkpoint trees) ---------------------


def _is_stack(node) -> bool:
  return isinstance(node, Mapping) and "stacked" in node and set(map(str, node)) <= {"first", "stacked"}


def _is_per_layer(node) -> bool:
  return isinstance(node, Mapping) and bool(node) and all(str(k).isdigit() for k in node)


def _leading(tree) -> int:
  return int(jax.tree.leaves(tree)[0].shape[0])


def _take(a, j: int):
  if isinstance(a, jax.ShapeDtypeStruct):
    return jax.ShapeDtypeStruct(a.shape[1:], a.dtype)
  return a[j]


def _stack(*xs):
  x = xs[0]
  if isinstance(x, jax.ShapeDtypeStruct):
    return jax.ShapeDtypeStruct((len(xs),) + tuple(x.shape), x.dtype)
  if isinstance(x, jax.Array):
    return jnp.stack(xs)
  return np.stack([np.asarray(v) for v in xs])


def to_per_layer(tree):
  """A nested dict with every `LayerStack` node unstacked into {0: layer, 1: layer, ...}."""
  if not isinstance(tree, Mapping):
    return tree
  if not _is_stack(tree):
    return {k: to_per_layer(v) for k, v in tree.items()}
  first = tree.get("first") or {}
  out = {int(k): to_per_layer(v) for k, v in first.items()}
  stacked = tree["stacked"]
  for j in range(_leading(stacked)):
    out[len(out)] = to_per_layer(jax.tree.map(lambda a, j=j: _take(a, j), stacked))
  return out


def to_layout(tree, like):
  """`tree` (either layout) in the layout of `like` (e.g. the abstract pure dict of the model to build).

  Nodes that `like` lacks are kept as they are, so the caller's structure check names them."""
  if not isinstance(tree, Mapping) or not isinstance(like, Mapping):
    return tree
  if _is_stack(like):
    per_layer = to_per_layer(tree) if _is_stack(tree) else tree
    if not _is_per_layer(per_layer):
      return tree
    layers = [per_layer[k] for k in sorted(per_layer, key=int)]
    first = like.get("first") or {}
    out = {"stacked": to_layout(jax.tree.map(_stack, *layers[len(first):]), like["stacked"])}
    if "first" in like:
      out["first"] = {k: to_layout(layers[int(k)], v) for k, v in first.items()}
    return out
  if _is_stack(tree):
    tree = to_per_layer(tree)
  keys = {str(k): k for k in like}
  return {k: (to_layout(v, like[keys[str(k)]]) if str(k) in keys else v) for k, v in tree.items()}
