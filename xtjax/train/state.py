"""The train state pytree and its shape-first, sharded construction."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from xtjax.models.prng import make_key


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar: optimizer steps taken
  params: nnx.State
  opt_state: Any
  rng: jax.Array  # uint32[2] raw key data (impl: TrainConfig.dropout_rng); dropout keys fold in the step

  def apply_gradients(self, tx: optax.GradientTransformation, grads):
    updates, opt_state = tx.update(grads, self.opt_state, self.params)
    params = optax.apply_updates(self.params, updates)
    return self.replace(step=self.step + 1, params=params, opt_state=opt_state), updates


def _replicated(mesh: Mesh):
  return NamedSharding(mesh, PartitionSpec())


def state_sharding(abstract_state: TrainState, param_shardings, mesh: Mesh) -> TrainState:
  """Shardings for a TrainState: params by the rules; every optimizer-state subtree with the
  params' structure (Adam's moments) like the params where the shapes agree; everything else replicated."""
  repl = _replicated(mesh)
  params_def = jax.tree.structure(abstract_state.params)

  def walk(node):
    if jax.tree.structure(node) == params_def:
      # Adafactor's factored row / column statistics have the params' structure, not their shapes.
      return jax.tree.map(lambda x, p, s: s if x.shape == p.shape else repl, node, abstract_state.params,
                          param_shardings)
    if isinstance(node, tuple) and hasattr(node, "_fields"):
      return type(node)(*[walk(c) for c in node])
    if isinstance(node, (tuple, list)):
      return type(node)(walk(c) for c in node)
    if isinstance(node, dict):
      return {k: walk(v) for k, v in node.items()}
    return jax.tree.map(lambda _: repl, node)

  return TrainState(step=repl, params=param_shardings, opt_state=walk(abstract_state.opt_state), rng=repl)


def new_rng(seed: int, impl: str = "threefry2x32") -> jax.Array:
  """Raw key data (uint32[2]) of a `xtjax.models.prng` key; the step wraps it with the same impl."""
  return jax.random.key_data(make_key(seed, impl))
