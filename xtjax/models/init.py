"""Shape-first model construction: abstract state, sharded init, and placing loaded weights.

`jax.eval_shape` gives every parameter's shape and logical axes without allocating; a jitted init
with `out_shardings` then materialises each shard on its own device, so a model larger than one
device's memory is never built on one device.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from xtjax.errors import CheckpointError
from xtjax.models import registry
from xtjax.models.scan import to_layout
from xtjax.models.heads import HeadConfig
from xtjax.models.task_model import TaskModel
from xtjax.parallel.mesh import single_device_mesh
from xtjax.parallel.rules import DEFAULT_RULES, Rules, state_shardings


def abstract(family: registry.Family, cfg, seed: int = 0):
  """(graphdef, abstract nnx.State) with ShapeDtypeStruct values; allocates nothing."""
  model = nnx.eval_shape(lambda: family.build(cfg, nnx.Rngs(seed)))
  return nnx.split(model)


def count_params(state) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(nnx.to_pure_dict(state))))


def init_sharded(ctor, mesh: Mesh, rules: Rules = DEFAULT_RULES):
  """(graphdef, params, shardings) of the module `ctor()` builds: shapes first (`nnx.eval_shape`), then
  one jitted init whose `out_shardings` put every parameter shard on its own device."""
  graphdef, abs_state = nnx.split(nnx.eval_shape(ctor))
  shardings = state_shardings(abs_state, mesh, rules)
  return graphdef, materialize(ctor, shardings), shardings


def materialize(ctor, shardings):
  """The parameters of the module `ctor()` builds, by one jitted init whose `out_shardings` put every shard
  on its own device."""
  return jax.jit(lambda: nnx.split(ctor())[1], out_shardings=shardings)()


def init(family: registry.Family, cfg, seed: int = 0, mesh: Mesh | None = None, rules: Rules = DEFAULT_RULES):
  """Randomly initialised (graphdef, params) with every parameter sharded by the rules."""
  graphdef, state, _ = init_sharded(lambda: family.build(cfg, nnx.Rngs(seed)), mesh or single_device_mesh(), rules)
  return graphdef, state


def abstract_task_model(family: registry.Family, cfg, heads: Mapping[str, HeadConfig], lora=None):
  """(graphdef, abstract state) of a TaskModel (with LoRA adapters if `lora`); allocates nothing."""
  return nnx.split(nnx.eval_shape(lambda: TaskModel(family, cfg, dict(heads), rngs=nnx.Rngs(0), lora=lora)))


def init_task_model(family: registry.Family, cfg, heads: Mapping[str, HeadConfig], mesh: Mesh,
                    rules: Rules = DEFAULT_RULES, seed: int = 0, lora=None):
  """(graphdef, params, shardings) of a randomly initialised TaskModel, sharded by the rules."""
  return init_sharded(lambda: TaskModel(family, cfg, dict(heads), rngs=nnx.Rngs(seed), lora=lora), mesh, rules)


def flat(tree: Mapping, prefix=()) -> dict:
  """{path tuple: leaf} of a nested dict."""
  out = {}
  for k, v in tree.items():
    if isinstance(v, Mapping):
      out.update(flat(v, prefix + (k,)))
    else:
      out[prefix + (k,)] = v
  return out


def place(family: registry.Family, cfg, pure_params: Mapping, mesh: Mesh | None = None,
          rules: Rules = DEFAULT_RULES, where: str = "checkpoint"):
  """(graphdef, state): host arrays put onto the mesh shard by shard, cast to cfg.param_dtype.

  Each device receives only its slice (`make_array_from_callback`), which is also what a
  multi-host run needs. Structure and shapes must match the model exactly, in either layer layout
  (per layer or stacked, `models.scan`): the model's is made here.
  """
  mesh = mesh or single_device_mesh()
  graphdef, abs_state = abstract(family, cfg)
  shardings = state_shardings(abs_state, mesh, rules)
  abs_pure = nnx.to_pure_dict(abs_state)
  want = flat(abs_pure)
  have = flat(to_layout(pure_params, abs_pure))
  missing = sorted(set(want) - set(have), key=str)
  extra = sorted(set(have) - set(want), key=str)
  if missing or extra:
    fmt = lambda ks: ["/".join(map(str, k)) for k in ks[:5]]
    raise CheckpointError(f"{where}: parameters do not match the model: missing {fmt(missing)}, unexpected {fmt(extra)}")
  sh_flat = flat(nnx.to_pure_dict(shardings))
  placed = {}
  for k, spec in want.items():
    arr = have[k]
    if tuple(arr.shape) != tuple(spec.shape):
      raise CheckpointError(f"{where}: parameter {'/'.join(map(str, k))} has shape {list(arr.shape)}, "
                            f"the model expects {list(spec.shape)}")
    placed[k] = put(arr, spec, sh_flat[k])
  nnx.replace_by_pure_dict(abs_state, nest(placed))
  return graphdef, abs_state


def put(arr, spec, sharding) -> jax.Array:
  """One array onto the mesh as `spec.dtype`: each device receives only its slice."""
  if isinstance(arr, jax.Array) and not isinstance(arr, np.ndarray):
    return jax.device_put(arr.astype(spec.dtype), sharding)
  host = np.asarray(arr)
  return jax.make_array_from_callback(spec.shape, sharding,
                                      lambda idx, host=host, dt=spec.dtype: np.asarray(host[idx]).astype(dt))


def nest(flat_tree: Mapping[tuple, object]) -> dict:
  """Inverse of `flat`."""
  nested: dict = {}
  for k, v in flat_tree.items():
    d = nested
    for p in k[:-1]:
      d = d.setdefault(p, {})
    d[k[-1]] = v
  return nested


def relayout(state: nnx.State, like: nnx.State, shardings: nnx.State, where: str = "checkpoint") -> nnx.State:
  """Parameters on the mesh in either layer layout (`models.scan`) converted on device to the layout of
  `like` (an abstract or real state of the model to run), each array placed by `shardings`."""
  like_pure = nnx.to_pure_dict(like)
  try:
    out = jax.jit(lambda p: to_layout(p, like_pure), out_shardings=nnx.to_pure_dict(shardings))(
        nnx.to_pure_dict(state))
  except (ValueError, TypeError, KeyError) as e:
    raise CheckpointError(f"{where}: parameters do not fit the configured model, in either layer layout "
                          f"({type(e).__name__}: {str(e)[:200]})") from e
  result = jax.tree.map(lambda x: x, like)
  nnx.replace_by_pure_dict(result, out)
  return result


def with_dtypes(cfg, dtype: str | None = None, param_dtype: str | None = None):
  """The config with compute / parameter dtypes overridden where given."""
  changes = {k: v for k, v in (("dtype", dtype), ("param_dtype", param_dtype)) if v is not None}
  return dataclasses.replace(cfg, **changes) if changes else cfg
