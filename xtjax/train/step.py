"""The pure train step: `train_step(state, batch) -> (state, metrics)` (evaluation: `xtjax.evaluation.programs`).

Compiled once per task (heads differ) with explicit in/out shardings and the state donated.
Gradient accumulation is a `lax.scan` over micro-batches inside the step, so one compiled program
does one optimizer update. Losses are sums over terms divided by the total count, which makes the
result independent of how a batch is split over micro-batches, devices or hosts.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from xtjax.models.heads import loss_terms
from xtjax.models.layers import fold
from xtjax.models.prng import wrap
from xtjax.parallel.rules import DEFAULT_RULES, traced_with_activation_sharding
from xtjax.train.state import TrainState, join, trained_part


def make_train_step(graphdef, tx: optax.GradientTransformation, task: str, head_type: str, accum_steps: int,
                    dropout: bool = True, task_id: int = 0, rng_impl: str = "threefry2x32", z_loss: float = 0.0,
                    lora=None):
  """The pure step for one task. `batch` arrays have leading dim batch_size (split into micro-batches).
  With `lora`, gradients are taken for the trained part only (`state.trained_part`).

  Dropout keys: `state.rng` (raw data of an `rng_impl` key) folded with the step, the task and the
  micro-batch index, so they depend on none of mesh, process count or resume point.
  """

  def loss_fn(trained, frozen, micro, key):
    model = nnx.merge(graphdef, join(trained, frozen))
    logits = model(task, micro, dropout_key=key)
    total, count = loss_terms(head_type, logits, micro, z_loss)
    return total, count

  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

  def step(state: TrainState, batch: dict):
    trained, frozen = trained_part(state.params, lora)
    base = jax.random.fold_in(jax.random.fold_in(wrap(state.rng, rng_impl), state.step), task_id) if dropout else None

    def split(x):
      return x.reshape((accum_steps, x.shape[0] // accum_steps) + x.shape[1:])

    micro = jax.tree.map(split, batch)

    def body(carry, xs):
      g_acc, l_acc, n_acc = carry
      i, mb = xs
      (loss, count), g = grad_fn(trained, frozen, mb, fold(base, i) if base is not None else None)
      return (jax.tree.map(jnp.add, g_acc, g), l_acc + loss, n_acc + count), None

    zeros = jax.tree.map(jnp.zeros_like, trained)
    (g_sum, loss_sum, n), _ = jax.lax.scan(body, (zeros, 0.0, 0.0), (jnp.arange(accum_steps), micro))
    denom = jnp.maximum(n, 1.0)
    grads = jax.tree.map(lambda g: g / denom, g_sum)
    loss = loss_sum / denom
    grad_norm = optax.global_norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    new_state, updates = state.apply_gradients(tx, grads, lora)
    # A non-finite loss or gradient leaves the state untouched; the loop stops on `finite == 0`.
    new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, state)
    metrics = {
        "loss": loss,
        "grad_norm": grad_norm,
        "update_norm": optax.global_norm(updates),
        "param_norm": optax.global_norm(new_state.params),
        "terms": n,
        "finite": finite.astype(jnp.int32),
    }
    return new_state, metrics

  return step


def compile_train_step(step_fn, state_sh, batch_sh, mesh=None, rules=DEFAULT_RULES):
  """The jitted step; with `mesh`, traced under `activation_sharding` (the layers' activations split over
  the batch by `rules`, scanned layers' weights sharded per layer)."""
  return jax.jit(traced_with_activation_sharding(step_fn, mesh, rules), in_shardings=(state_sh, batch_sh),
                 out_shardings=(state_sh, None), donate_argnums=(0,))

