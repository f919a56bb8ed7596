"""Logical axis names and the one rules table that maps them to mesh axes.

Every parameter is created with `nnx.Param(value, logical_axes=(...))` (our own metadata key, so
Flax's eager-sharding machinery stays out of the way). Changing parallelism is a change of rules,
never of model code. Mesh axes: `data` (pure data parallel), `fsdp` (data parallel with sharded
parameters and optimizer state) and `tensor` (Megatron-style tensor parallel).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MeshAxes = str | tuple[str, ...] | None
Rules = tuple[tuple[str, MeshAxes], ...]

# Logical names used by the models:
#   batch, length            activations
#   vocab                    embedding rows (250k for XLM-R/mT5: sharded on `tensor`)
#   embed                    model width (sharded on `fsdp`)
#   heads, kv                attention heads and head width
#   mlp                      feed-forward width
#   positions, types         position / token-type embedding rows
#   relpos_buckets           T5 relative position buckets
#   labels                   classifier outputs
#   norm                     1-d layer-norm scales and biases
DEFAULT_RULES: Rules = (
    ("batch", ("data", "fsdp")),
    ("length", None),
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("heads", "tensor"),
    ("kv", None),
    ("mlp", "tensor"),
    ("positions", None),
    ("types", None),
    ("relpos_buckets", None),
    ("labels", None),
    ("norm", None),
)


def rules_from_config(table: Sequence[Sequence[Any]] | None) -> Rules:
  """Turns a config's list of [logical, mesh_axes] pairs into a rules table (None: defaults)."""
  if table is None:
    return DEFAULT_RULES
  out = []
  for row in table:
    name, axes = row
    if isinstance(axes, list):
      axes = tuple(axes)
    out.append((str(name), axes))
  return tuple(out)


def logical_to_spec(
    names: Sequence[str | None] | None,
    rules: Rules = DEFAULT_RULES,
    mesh: Mesh | None = None,
    shape: Sequence[int] | None = None,
) -> PartitionSpec:
  """Maps logical axis names to a PartitionSpec.

  A mesh axis is used at most once per array (later dims that ask for a taken axis stay
  replicated). With `mesh` and `shape` given, a dim that the mesh axes do not divide stays
  replicated, so tiny test models shard on any mesh.
  """
  if names is None:
    return PartitionSpec()
  table = dict(rules)
  used: set[str] = set()
  spec = []
  for i, name in enumerate(names):
    axes = table.get(name) if name is not None else None
    if axes is None:
      spec.append(None)
      continue
    axes_t = (axes,) if isinstance(axes, str) else tuple(axes)
    keep = []
    for ax in axes_t:
      if ax in used:
        continue
      if mesh is not None and ax not in mesh.shape:
        continue
      keep.append(ax)
    if mesh is not None and shape is not None:
      size = 1
      for ax in keep:
        size *= mesh.shape[ax]
      if size > 1 and shape[i] % size != 0:
        keep = []
    keep = [ax for ax in keep if mesh is None or mesh.shape[ax] > 1] if mesh is not None else keep
    used.update(keep)
    if not keep:
      spec.append(None)
    elif len(keep) == 1:
      spec.append(keep[0])
    else:
      spec.append(tuple(keep))
  while spec and spec[-1] is None:
    spec.pop()
  return PartitionSpec(*spec)


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

  def one(v):
    value = v.get_value() if hasattr(v, "get_value") else v.value
    names = v.get_metadata().get("logical_axes")
    spec = logical_to_spec(names, rules, mesh, getattr(value, "shape", None))
    return v.replace(NamedSharding(mesh, spec))

  return jax.tree.map(one, state, is_leaf=_is_var)


def activation_constraint(x: jax.Array, names: Sequence[str | None], rules: Rules | None, mesh: Mesh | None):
  """Applies a sharding constraint on an activation by logical names (no-op without a mesh)."""
  if mesh is None or rules is None:
    return x
  spec = logical_to_spec(names, rules, mesh, x.shape)
  return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))
