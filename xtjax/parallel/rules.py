"""Logical axis names and the one rules table that maps them to mesh axes.

Every parameter is created with `nnx.Param(value, logical_axes=(...))` (our own metadata key, so
Flax's eager-sharding machinery stays out of the way). Changing parallelism is a change of rules,
never of model code. Mesh axes: `data` (pure data parallel), `fsdp` (data parallel with sharded
parameters and optimizer state) and `tensor` (Megatron-style tensor parallel).

The table is strict: a logical name without a rule, or a rule naming an axis the mesh lacks, is an
error naming the parameter path. A dimension that its mesh axes do not divide (XLM-R's 250,002-row
vocabulary on `tensor=4`) is replicated, and the log says so once, with the parameter paths and why.

Activations take the same rules through `constrain`, inside a program traced under `activation_sharding`
(the train step is): without them XLA's sharding propagation may follow the weights' `embed` -> `fsdp`
sharding into a scanned layer stack and keep every layer's activations for the whole batch.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
from collections.abc import Sequence
from typing import Any

import jax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from xtjax.errors import ConfigError

log = logging.getLogger(__name__)

MeshAxes = str | tuple[str, ...] | None
Rules = tuple[tuple[str, MeshAxes], ...]

# Logical names used by the models:
#   batch, length            activations
#   vocab                    embedding rows (250k for XLM-R/mT5: sharded on `tensor`)
#   embed                    model width (sharded on `fsdp`)
#   heads, kv                attention heads and head width
#   kv_heads                 key/value heads of grouped-query attention (decoder LLMs)
#   mlp                      feed-forward width
#   positions, types         position / token-type embedding rows
#   relpos_buckets           T5 relative position buckets
#   labels                   classifier outputs
#   norm                     1-d layer-norm scales and biases
#   lora_rank                LoRA adapters' rank (A [in..., rank], B [rank, out...]; tiny, replicated)
#   layers                   the leading axis of stacked layer parameters (`models.scan`: one scan step each)
DEFAULT_RULES: Rules = (
    ("batch", ("data", "fsdp")),
    ("length", None),
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("heads", "tensor"),
    ("kv", None),
    ("kv_heads", "tensor"),
    ("mlp", "tensor"),
    ("positions", None),
    ("types", None),
    ("relpos_buckets", None),
    ("labels", None),
    ("norm", None),
    ("lora_rank", None),
    ("layers", None),
)


LOGICAL_NAMES = tuple(name for name, _ in DEFAULT_RULES)


def rules_from_config(table: Sequence[Sequence[Any]] | None) -> Rules:
  """Turns a config's list of [logical, mesh_axes] pairs into a rules table (None: defaults).

  Every row names a known logical axis once; mesh axes are checked against the mesh when used."""
  if table is None:
    return DEFAULT_RULES
  out = []
  for i, row in enumerate(table):
    if not isinstance(row, (list, tuple)) or len(row) != 2:
      raise ConfigError(f"rules[{i}]: expected [logical_name, mesh_axes], got {row!r}")
    name, axes = row
    if name not in LOGICAL_NAMES:
      raise ConfigError(f"rules[{i}]: unknown logical axis name {name!r}; known: {list(LOGICAL_NAMES)}")
    if name in dict(out):
      raise ConfigError(f"rules[{i}]: logical axis name {name!r} has two rules")
    if isinstance(axes, list):
      axes = tuple(axes)
    if axes is not None and not (isinstance(axes, str) or all(isinstance(a, str) for a in axes)):
      raise ConfigError(f"rules[{i}] ({name}): mesh axes must be a name, a list of names or null, got {axes!r}")
    out.append((str(name), axes))
  return tuple(out)


def _map(names: Sequence[str | None], rules: Rules, mesh: Mesh | None, shape: Sequence[int] | None,
         where: str) -> tuple[PartitionSpec, list[str]]:
  """(PartitionSpec, why each dimension that a rule shards stays replicated)."""
  table = dict(rules)
  used: set[str] = set()
  spec, replicated = [], []
  for i, name in enumerate(names):
    if name is None:
      spec.append(None)
      continue
    if name not in table:
      raise ConfigError(f"{where}: logical axis name {name!r} has no rule; the rules table names {sorted(table)}")
    axes = table[name]
    if axes is None:
      spec.append(None)
      continue
    keep = []
    for ax in (axes,) if isinstance(axes, str) else tuple(axes):
      if mesh is not None and ax not in mesh.shape:
        raise ConfigError(f"{where}: rule {name!r} -> {ax!r} names no mesh axis; the mesh has {list(mesh.shape)}")
      if ax not in used and (mesh is None or mesh.shape[ax] > 1):  # an axis is used once per array
        keep.append(ax)
    if mesh is not None and shape is not None and keep:
      size = 1
      for ax in keep:
        size *= mesh.shape[ax]
      if shape[i] % size:
        axes_desc = "x".join(f"{ax}={mesh.shape[ax]}" for ax in keep)
        replicated.append(f"{where} dim {i} ({name}={shape[i]}) is not divisible by {axes_desc}")
        keep = []
    used.update(keep)
    spec.append(None if not keep else keep[0] if len(keep) == 1 else tuple(keep))
  while spec and spec[-1] is None:
    spec.pop()
  return PartitionSpec(*spec), replicated


_REPORTED: set[str] = set()


def _report_replicated(replicated: list[str]) -> None:
  """Logs each distinct set of fallbacks to replication once per process."""
  message = "; ".join(replicated)
  if replicated and message not in _REPORTED:
    _REPORTED.add(message)
    log.warning("replicated instead of sharded (%d): %s", len(replicated), message)


def logical_to_spec(
    names: Sequence[str | None] | None,
    rules: Rules = DEFAULT_RULES,
    mesh: Mesh | None = None,
    shape: Sequence[int] | None = None,
    where: str = "array",
) -> PartitionSpec:
  """Maps logical axis names to a PartitionSpec; `where` names the array in errors and logs.

  A mesh axis is used at most once per array (later dims that ask for a taken axis stay
  replicated), and axes of size 1 are dropped. With `mesh` and `shape` given, a dim that its mesh
  axes do not divide stays replicated and is logged once.
  """
  if names is None:
    return PartitionSpec()
  spec, replicated = _map(names, rules, mesh, shape, where)
  _report_replicated(replicated)
  return spec


def _is_var(x) -> bool:
  return isinstance(x, nnx.Variable)


def logical_axes_of(state) -> Any:
  """The pytree of logical axis tuples (or None) of an nnx State, one per Variable."""
  return jax.tree.map(
      lambda v: v.get_metadata().get("logical_axes") if _is_var(v) else None,
      state,
      is_leaf=_is_var,
  )


def state_shardings(state, mesh: Mesh, rules: Rules = DEFAULT_RULES):
  """NamedShardings for every Variable of an (abstract) nnx State, from its logical axes.

  The result has the structure of `state` with each Variable's value replaced by a sharding, so it
  can be passed as `out_shardings` of a jitted init or `in_shardings` of a step.
  """

  replicated: list[str] = []

  def one(path, v):
    value = v.get_value() if hasattr(v, "get_value") else v.value
    names = v.get_metadata().get("logical_axes")
    if names is None:
      return v.replace(NamedSharding(mesh, PartitionSpec()))
    where = jax.tree_util.keystr(path, simple=True, separator="/")
    spec, why = _map(names, rules, mesh, getattr(value, "shape", None), where)
    replicated.extend(why)
    return v.replace(NamedSharding(mesh, spec))

  out = jax.tree_util.tree_map_with_path(one, state, is_leaf=_is_var)
  _report_replicated(replicated)
  return out


_ACTIVE: contextvars.ContextVar[tuple[Mesh, Rules] | None] = contextvars.ContextVar("activation_sharding",
                                                                                      default=None)


@contextlib.contextmanager
def activation_sharding(mesh: Mesh, rules: Rules = DEFAULT_RULES):
  """While tracing inside this context, `constrain` pins activations to `mesh` by `rules`."""
  token = _ACTIVE.set((mesh, rules))
  try:
    yield
  finally:
    _ACTIVE.reset(token)


def traced_with_activation_sharding(fn, mesh: Mesh | None, rules: Rules = DEFAULT_RULES):
  """`fn`, traced inside `activation_sharding(mesh, rules)` (for `jax.jit`); `fn` itself without a mesh."""
  if mesh is None:
    return fn

  @functools.wraps(fn)
  def traced(*args, **kwargs):
    with activation_sharding(mesh, rules):
      return fn(*args, **kwargs)

  return traced


def constrain(x: jax.Array, names: Sequence[str | None], where: str = "activation") -> jax.Array:
  """`x` constrained to the sharding its logical axis `names` get under the active `activation_sharding`;
  `x` as it is outside one (single-device programs, the model's own tests)."""
  pinned = active_spec(names, x.shape, where)
  if pinned is None:
    return x
  mesh, spec = pinned
  return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))


def active_platform() -> str:
  """The platform the traced program is for: the `activation_sharding` mesh's devices (an AOT plan's
  TPU topology), else JAX's default backend."""
  active = _ACTIVE.get()
  return active[0].devices.flat[0].platform if active is not None else jax.default_backend()


def active_spec(names: Sequence[str | None], shape: Sequence[int], where: str = "activation"
                ) -> tuple[Mesh, PartitionSpec] | None:
  """(mesh, PartitionSpec) that `constrain` would pin an array of `shape` to; None outside
  `activation_sharding` (for kernels that must be run per shard, under `shard_map`)."""
  active = _ACTIVE.get()
  if active is None:
    return None
  mesh, rules = active
  return mesh, logical_to_spec(names, rules, mesh, shape, where)


def _axes(rules: Rules, name: str) -> tuple[str, ...]:
  axes = dict(rules).get(name)
  return () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)


def vocab_parallel(x: jax.Array, weight: jax.Array, vocab_dim: int) -> tuple[jax.Array, jax.Array, Any]:
  """(hidden states, LM-head weight, constrain-the-logits function) for a vocabulary-parallel LM head.

  Under FSDP the default is to all-gather the whole [D, V] weight for the logits and to hold the whole f32
  [D, V] gradient before reduce-scattering it: for mT5-XXL's 4096 x 250,112 head that is 7.6 GiB of a
  device's temporaries, while the hidden states of a micro-batch are a few MiB. Vocabulary-parallel, the
  axes that shard the batch and the weights (`fsdp`) move from the batch to the vocabulary: the hidden
  states are gathered, the weight is re-split by vocabulary rows (an all-to-all of its own shard), each
  device computes its slice of the vocabulary for every token, and the loss's reductions over the
  vocabulary become all-reduces of [B, T] numbers. Same logits; identity outside `activation_sharding`,
  without such an axis, or when the vocabulary does not divide (then the default, logged once)."""
  active = _ACTIVE.get()
  ident = (x, weight, lambda logits: logits)
  if active is None:
    return ident
  mesh, rules = active
  batch = _axes(rules, "batch")
  moved = tuple(a for a in batch if a in _axes(rules, "embed") and mesh.shape.get(a, 1) > 1)
  if not moved:
    return ident
  vocab_axes = moved + tuple(a for a in _axes(rules, "vocab") if a not in moved and mesh.shape.get(a, 1) > 1)
  split = 1
  for a in vocab_axes:
    split *= mesh.shape[a]
  vocab = weight.shape[vocab_dim]
  if vocab % split:
    _report_replicated([f"LM head: vocabulary {vocab} is not divisible by {'x'.join(vocab_axes)}={split}, so the "
                        "logits gather the whole weight (FSDP's default)"])
    return ident
  kept = tuple(a for a in batch if a not in moved and mesh.shape.get(a, 1) > 1)
  batch_spec = None if not kept else kept[0] if len(kept) == 1 else kept
  vocab_spec = vocab_axes[0] if len(vocab_axes) == 1 else vocab_axes

  def pin(a, spec):
    return jax.lax.with_sharding_constraint(a, NamedSharding(mesh, PartitionSpec(*spec)))

  w_spec = [None] * weight.ndim
  w_spec[vocab_dim] = vocab_spec
  return (pin(x, (batch_spec,)), pin(weight, w_spec),
          lambda logits: pin(logits, (batch_spec,) + (None,) * (logits.ndim - 2) + (vocab_spec,)))
