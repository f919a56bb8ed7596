"""optax AdamW (or Adafactor, as mT5 was fine-tuned) with a weight-decay mask, warm-up + linear decay
(or constant), clipping, layer-wise learning-rate decay and freezing, all chosen by regexes over
parameter paths.

The regexes always see per-layer paths (`encoder/layers/3/attention/query`): a stacked parameter
(`encoder/layers/stacked/attention/query`, [N, ...], `models.scan`) gets one value per layer.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from xtjax.errors import ConfigError
from xtjax.models.scan import to_layout, to_per_layer
from xtjax.runs.schema import OptimConfig


def path_str(path) -> str:
  """'encoder/layers/0/attention/query' for a jax tree path (the trailing `.value` dropped)."""
  parts = []
  for k in path:
    name = getattr(k, "key", None)
    if name is None:
      name = getattr(k, "name", None)
    if name is None:
      name = getattr(k, "idx", None)
    if isinstance(k, jax.tree_util.GetAttrKey) and name == "value" and k is path[-1]:  # a Variable's value
      continue
    parts.append(str(name))
  return "/".join(parts)


def tree_paths(params):
  return jax.tree_util.tree_map_with_path(lambda p, _: path_str(p), params)


def per_layer_values(params, fn):
  """`fn(path)` of every parameter's per-layer path(s): a pytree like `params` whose stacked leaves hold
  an [N] numpy array (one value per layer) and the others `fn`'s value."""
  pure = nnx.to_pure_dict(params) if isinstance(params, nnx.State) else params
  shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), pure)
  per_layer = jax.tree_util.tree_map_with_path(lambda p, _: fn(path_str(p)), to_per_layer(shapes))
  lookup = dict(zip(jax.tree.leaves(tree_paths(shapes)), jax.tree.leaves(to_layout(per_layer, shapes))))
  return jax.tree_util.tree_map_with_path(lambda p, _: lookup[path_str(p)], params)


def _one_value(values, param, what: str, path: str):
  """A stacked parameter's per-layer values as one value when they agree, else broadcastable [N, 1, ...]."""
  v = np.asarray(values)
  if v.ndim == 0 or (v == v.flat[0]).all():
    return v.flat[0].item()
  if what == "weight decay":
    raise ConfigError(f"optim.no_decay: matches some layers of the stacked parameter {path} but not others; "
                      "use per-layer storage (model.config_overrides.scan_layers: false) or a pattern for every layer")
  return v.reshape((-1,) + (1,) * (len(param.shape) - 1))


def _matches(patterns, path: str) -> bool:
  return any(re.fullmatch(p, path) for p in patterns)


def schedule(cfg: OptimConfig, total_steps: int) -> optax.Schedule:
  warmup = cfg.warmup_steps if cfg.warmup_steps is not None else int(round(cfg.warmup_ratio * total_steps))
  warmup = max(0, min(warmup, total_steps))
  if cfg.schedule == "constant":
    if warmup == 0:
      return optax.constant_schedule(cfg.learning_rate)
    return optax.join_schedules([optax.linear_schedule(0.0, cfg.learning_rate, warmup),
                                 optax.constant_schedule(cfg.learning_rate)], [warmup])
  # HF get_linear_schedule_with_warmup: lr * step / warmup, then lr * (total - step) / (total - warmup).
  decay = max(total_steps - warmup, 1)
  return optax.join_schedules([optax.linear_schedule(0.0, cfg.learning_rate, max(warmup, 1)),
                               optax.linear_schedule(cfg.learning_rate, 0.0, decay)], [warmup])


def lr_scales(cfg: OptimConfig, params, num_layers: int):
  """Per-parameter multipliers: 0 for frozen parameters, decay**depth with layer-wise decay (per layer
  of a stacked parameter: a broadcastable [N, 1, ...] array where its layers differ)."""
  layer_re = re.compile(r"(?:^|/)layers/(\d+)/")

  def one(path: str) -> float:
    if _matches(cfg.freeze, path):
      return 0.0
    if cfg.layerwise_lr_decay is None or not path.startswith("encoder/"):
      return 1.0
    m = layer_re.search(path)
    layer_id = int(m.group(1)) + 1 if m else (0 if "embed" in path else num_layers + 1)
    return float(cfg.layerwise_lr_decay ** (num_layers + 1 - layer_id))

  values = per_layer_values(params, one)
  return jax.tree.map(lambda v, p, path: _one_value(v, p, "learning rate", path), values, params, tree_paths(params))


def _scale_by_tree(scales) -> optax.GradientTransformation:
  def init(_):
    return optax.EmptyState()

  def update(updates, state, params=None):
    return jax.tree.map(lambda u, s: u * jnp.asarray(s, u.dtype), updates, scales), state

  return optax.GradientTransformation(init, update)


def _adamw(cfg: OptimConfig, sched: optax.Schedule, decay_mask) -> list[optax.GradientTransformation]:
  return [optax.scale_by_adam(b1=cfg.b1, b2=cfg.b2, eps=cfg.eps),
          optax.add_decayed_weights(cfg.weight_decay, mask=decay_mask),
          optax.scale_by_learning_rate(sched)]


def _as_matrices(inner: optax.GradientTransformation) -> optax.GradientTransformation:
  """`inner` on every parameter of 3+ dims viewed as the matrix [largest dim, the rest] (or [the rest,
  largest dim] when it comes last). xtjax stores attention kernels as [d_model, heads, d_kv] and
  [heads, d_kv, d_model]; Mesh TensorFlow's T5 / mT5 store them as [d_model, heads * d_kv]
  (`attention_params(combine_dims=True)`), so this is the shape its Adafactor factored. Without the
  view, heads and d_kv (< 128) would leave those kernels unfactored: per-element statistics."""

  def view(x):
    s = x.shape
    if len(s) < 3:
      return x
    if s[0] >= max(s[1:]):
      return x.reshape(s[0], -1)
    if s[-1] >= max(s[:-1]):
      return x.reshape(-1, s[-1])
    return x

  def init(params):
    return inner.init(jax.tree.map(view, params))

  def update(updates, state, params=None):
    new, state = inner.update(jax.tree.map(view, updates), state,
                              None if params is None else jax.tree.map(view, params))
    return jax.tree.map(lambda n, u: n.reshape(u.shape), new, updates), state

  return optax.GradientTransformation(init, update)


def _adafactor(cfg: OptimConfig, sched: optax.Schedule, decay_mask) -> list[optax.GradientTransformation]:
  """T5 / mT5 fine-tuning's optimizer (Mesh TensorFlow `AdafactorOptimizer` defaults): factored
  second moments for dims >= 128 (attention kernels as matrices, see `_as_matrices`), decay 0.8,
  update clipping at RMS 1, steps relative to each parameter's RMS, no momentum; mT5 ran it at a
  constant 1e-3 without weight decay."""
  if cfg.weight_decay:
    raise ConfigError(f"optim.weight_decay: {cfg.weight_decay} with optimizer adafactor; set it to 0 "
                      "(optax.adafactor's decay is not scaled by the learning rate, so AdamW's values do not carry over)")
  return [_as_matrices(optax.adafactor(learning_rate=sched, momentum=None, multiply_by_parameter_scale=True,
                                       factored=True))]


# optim.optimizer -> (config, schedule, weight-decay mask) -> the update rule's chain links, learning rate
# included (AdamW's links stay top-level so its optimizer state keeps the layout older checkpoints have).
OPTIMIZERS = {"adamw": _adamw, "adafactor": _adafactor}


# Optimizers whose update of a tensor depends on the whole tensor (Adafactor's RMS scaling, clipping and
# factored moments): on stacked parameters they run once per layer (vmapped), as on per-layer storage.
PER_TENSOR = frozenset({"adafactor"})


def _vmapped(tx: optax.GradientTransformation) -> optax.GradientTransformation:
  return optax.GradientTransformation(jax.vmap(tx.init), jax.vmap(tx.update))


def _per_layer(links, params) -> list[optax.GradientTransformation]:
  """`links` applied to each layer of stacked parameters separately, to the others as they are."""
  tx = optax.chain(*links)
  per_layer = per_layer_values(params, lambda _: 0)  # an [N] array on stacked parameters
  labels = jax.tree.map(lambda v: f"stacked{np.size(v)}" if np.ndim(v) else "plain", per_layer)
  # Sorted: the transforms' order is the program's, and a set's order changes with PYTHONHASHSEED (another
  # process, another HLO for the same run: a persistent compilation cache miss, a stale compiled cell).
  groups = sorted(set(jax.tree.leaves(labels)))
  if groups == ["plain"]:
    return list(links)
  return [optax.multi_transform({g: tx if g == "plain" else _vmapped(tx) for g in groups}, labels)]


def build(cfg: OptimConfig, params, total_steps: int, num_layers: int):
  """(optax transformation, learning-rate schedule) for `params` (an nnx.State or pytree)."""
  decay = per_layer_values(params, lambda p: not _matches(cfg.no_decay, p))
  decay_mask = jax.tree.map(lambda v, p, path: bool(_one_value(v, p, "weight decay", path)), decay, params,
                            tree_paths(params))
  sched = schedule(cfg, total_steps)
  parts = []
  if cfg.max_grad_norm:
    parts.append(optax.clip_by_global_norm(cfg.max_grad_norm))
  links = OPTIMIZERS[cfg.optimizer](cfg, sched, decay_mask)
  parts += _per_layer(links, params) if cfg.optimizer in PER_TENSOR else links
  scales = lr_scales(cfg, params, num_layers)
  if any(np.any(np.asarray(s) != 1.0) for s in jax.tree.leaves(scales)):
    parts.append(_scale_by_tree(scales))
  return optax.chain(*parts), sched
