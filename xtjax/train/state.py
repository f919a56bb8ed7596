"""The train state pytree and its shape-first, sharded construction.

With LoRA only the adapters and `lora.train` (the task heads) are trained: the optimizer state, the
gradients and their accumulators cover that part alone (`trained_part`), so frozen base weights carry
no Adam moments and no gradient buffers.
"""

from __future__ import annotations

import re
from typing import Any

import flax.struct
import jax
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from xtjax.models import lora as lora_lib
from xtjax.models.prng import make_key


def trained_part(params, lora: lora_lib.LoraConfig | None):
  """(trained, frozen) parts of an nnx.State of params (or of their shardings): everything and None for
  full fine-tuning; with LoRA the adapters plus the base parameters matching `lora.train`, and the rest."""
  if lora is None:
    return params, None

  def trained(path, _):
    p = "/".join(map(str, path))
    return lora_lib.is_adapter_path(p) or any(re.fullmatch(t, p) for t in lora.train)

  return params.split(trained, ...)


def join(trained, frozen):
  return trained if frozen is None else nnx.merge_state(trained, frozen)


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar: optimizer steps taken
  params: nnx.State
  opt_state: Any
  rng: jax.Array  # uint32[2] raw key data (impl: TrainConfig.dropout_rng); dropout keys fold in the step

  def apply_gradients(self, tx: optax.GradientTransformation, grads, lora: lora_lib.LoraConfig | None = None):
    """One update from `grads` of the trained part (`trained_part`); frozen parameters stay as they are."""
    trained, frozen = trained_part(self.params, lora)
    updates, opt_state = tx.update(grads, self.opt_state, trained)
    params = join(optax.apply_updates(trained, updates), frozen)
    return self.replace(step=self.step + 1, params=params, opt_state=opt_state), updates


def _replicated(mesh: Mesh):
  return NamedSharding(mesh, PartitionSpec())


def state_sharding(abstract_state: TrainState, param_shardings, mesh: Mesh,
                   lora: lora_lib.LoraConfig | None = None) -> TrainState:
  """Shardings for a TrainState: params by the rules; every optimizer-state subtree with the trained
  params' structure (Adam's moments) like those params where the shapes agree; everything else replicated."""
  repl = _replicated(mesh)
  trained, _ = trained_part(abstract_state.params, lora)
  trained_sh, _ = trained_part(param_shardings, lora)
  params_def = jax.tree.structure(trained)

  def walk(node):
    if jax.tree.structure(node) == params_def:
      # Adafactor's factored row / column statistics have the params' structure, not their shapes.
      return jax.tree.map(lambda x, p, s: s if x.shape == p.shape else repl, node, trained, trained_sh)
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
