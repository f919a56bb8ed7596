"""Hugging Face safetensors checkpoints streamed onto the mesh, one tensor at a time.

Everything that can be wrong with the checkpoint (missing, unexpected or mis-shaped tensors) is
found from the files' headers before any tensor is read, so a bad checkpoint places nothing. Then,
file by file, each tensor is read, converted to our layout and placed with its sharding (each
device receives only its slice) before the next is read: a host holds one tensor at a time, never
the whole model (a 70B checkpoint is 140 GB in bf16).

Stacked layers (`models.scan`): a stacked parameter [N, ...] starts as sharded zeros on the mesh, and each
layer's tensor, placed with the same sharding less the leading axis, is written into its slice on device
(a donated `dynamic_update_slice`): devices hold the stacked parameter plus one layer, the host one tensor.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from xtjax.errors import CheckpointError
from xtjax.models import hf_io
from xtjax.models import hf_mapping as M
from xtjax.models import init as model_init
from xtjax.models.scan import to_per_layer
from xtjax.parallel.rules import Rules, state_shardings


def _reader(files: dict[str, Path]):
  """get(name) -> numpy array, reading only that tensor."""
  from safetensors import safe_open

  def get(name: str):
    path = files[name]
    try:
      with safe_open(str(path), framework="numpy") as f:
        return f.get_tensor(name)
    except Exception as e:
      raise CheckpointError(f"{path}: cannot read tensor {name!r} ({e}); is the file truncated or corrupt?") from e

  return get


class _Slot:
  """A parameter's stand-in leaf that `to_per_layer` can slice: (its path in the model, layer or None)."""

  def __init__(self, path: tuple, shape: tuple, layer: int | None = None):
    self.path, self.shape, self.layer = path, shape, layer

  def __getitem__(self, j: int) -> _Slot:
    return _Slot(self.path, self.shape[1:], j)


def _slots(abs_pure) -> dict[tuple, _Slot]:
  """{per-layer path (what the rules name): where it goes in the model's layout}."""
  tagged = model_init.nest({p: _Slot(p, tuple(a.shape)) for p, a in model_init.flat(abs_pure).items()})
  return model_init.flat(to_per_layer(tagged))


def _write_layer(stacked, layer, j):
  return jax.lax.dynamic_update_index_in_dim(stacked, layer, j, 0)


@functools.cache
def _layer_writer(sharding: NamedSharding):
  """The jitted, donated `_write_layer` for stacks sharded as `sharding` (one per sharding, not per tensor)."""
  return jax.jit(_write_layer, donate_argnums=0, out_shardings=sharding)


def _into_stack(placed: dict, slot: _Slot, host, spec, sharding: NamedSharding) -> None:
  """Layer `slot.layer` of a stacked parameter written on device into its (lazily zeroed) buffer."""
  if slot.path not in placed:
    placed[slot.path] = jnp.zeros(spec.shape, spec.dtype, device=sharding)
  one = NamedSharding(sharding.mesh, PartitionSpec(*sharding.spec[1:]))
  layer = model_init.put(host, jax.ShapeDtypeStruct(spec.shape[1:], spec.dtype), one)
  placed[slot.path] = _layer_writer(sharding)(placed[slot.path], layer, jnp.int32(slot.layer))


def load(folder: Path, family, cfg, mesh: Mesh, rules: Rules, files: dict[str, Path] | None = None):
  """(graphdef, placed nnx.State, ignored tensor names) of `family.tensor_plan` applied to `folder`."""
  where = str(folder)
  files = hf_io.safetensors_files(folder) if files is None else files
  if files is None:
    raise CheckpointError(f"{folder}: streaming needs safetensors ({hf_io.SAFE_SINGLE} or {hf_io.SAFE_INDEX})")
  shapes = hf_io.safetensors_shapes(files)
  plan = family.tensor_plan(cfg, list(shapes), where)
  ignored = M.check_tensors(plan.rules, shapes, plan.ignore, where)
  get = _reader(files)
  M.check_equal(plan, get, shapes, where)
  graphdef, abs_state = model_init.abstract(family, cfg)
  want = model_init.flat(nnx.to_pure_dict(abs_state))
  slots = _slots(nnx.to_pure_dict(abs_state))
  by_path = {tuple(r.ours): r for r in plan.rules}
  if set(by_path) != set(slots):  # the family's rules and its model disagree: a bug, not the checkpoint's fault
    fmt = lambda ks: ["/".join(map(str, k)) for k in sorted(ks, key=str)[:5]]
    raise CheckpointError(f"{where}: rules do not cover the model: missing {fmt(set(slots) - set(by_path))}, "
                          f"unexpected {fmt(set(by_path) - set(slots))}")
  shardings = model_init.flat(nnx.to_pure_dict(state_shardings(abs_state, mesh, rules)))
  placed = {}
  for path in sorted(by_path, key=lambda k: (str(files[by_path[k].hf]), by_path[k].hf)):  # file by file
    rule, slot = by_path[path], slots[path]
    host = M.convert(rule, get(rule.hf), where)
    if slot.layer is None:
      placed[path] = model_init.put(host, want[path], shardings[path])
    else:
      _into_stack(placed, slot, host, want[slot.path], shardings[slot.path])
  nnx.replace_by_pure_dict(abs_state, model_init.nest(placed))
  return graphdef, abs_state, ignored
