"""Batches on the mesh: the one `batch_sharding` (leading dim on the logical `batch` axis) and host
arrays -> global jax arrays, on one process or many."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding

from xtjax.parallel.rules import Rules, logical_to_spec


def batch_sharding(mesh: Mesh, rules: Rules, shape: Sequence[int]) -> NamedSharding:
  """Rows split over the mesh axes the rules give the logical `batch` axis; other dims replicated."""
  names = ("batch",) + (None,) * (len(shape) - 1)
  return NamedSharding(mesh, logical_to_spec(names, rules, mesh, tuple(shape)))


def put_global_batch(batch: Mapping[str, np.ndarray], mesh: Mesh, rules: Rules) -> dict:
  """Host batch holding every process's rows -> global jax arrays (each process places its slice)."""
  pc, pi = jax.process_count(), jax.process_index()
  out = {}
  for k, v in batch.items():
    sh = batch_sharding(mesh, rules, v.shape)
    if pc == 1:
      out[k] = jax.device_put(v, sh)
    else:
      per = v.shape[0] // pc
      out[k] = jax.make_array_from_process_local_data(sh, v[pi * per:(pi + 1) * per], v.shape)
  return out


def put_process_batch(batch: Mapping[str, np.ndarray], mesh: Mesh, rules: Rules) -> dict:
  """This process's slice of a global batch -> global jax arrays."""
  pc = jax.process_count()
  out = {}
  for k, v in batch.items():
    shape = (v.shape[0] * pc,) + v.shape[1:]
    sh = batch_sharding(mesh, rules, shape)
    out[k] = jax.make_array_from_process_local_data(sh, v, shape) if pc > 1 else jax.device_put(v, sh)
  return out


def process_row_range(sharding: NamedSharding, shape: Sequence[int]) -> tuple[int, int]:
  """[start, stop) of the rows this process's devices hold under `sharding`: where
  `jax.make_array_from_process_local_data` puts this process's local rows."""
  rows = [idx[0].indices(shape[0])[:2] for idx in sharding.addressable_devices_indices_map(tuple(shape)).values()]
  start, stop = min(a for a, _ in rows), max(b for _, b in rows)
  if sum(b - a for a, b in set(rows)) != stop - start:
    raise ValueError(f"this process's devices hold rows {sorted(set(rows))} of {tuple(shape)}: not one contiguous range")
  return start, stop


def process_rows(x: jax.Array, start: int, stop: int) -> np.ndarray:
  """Rows [start, stop) of a global array, assembled from this process's addressable shards only (no
  collective); an element no local shard holds is an error."""
  out = np.zeros((stop - start,) + x.shape[1:], x.dtype)
  covered = np.zeros(out.shape, bool)
  for shard in x.addressable_shards:
    a, b = shard.index[0].indices(x.shape[0])[:2] if x.ndim else (0, 0)
    lo, hi = max(a, start), min(b, stop)
    if lo >= hi:
      continue
    where = (slice(lo - start, hi - start),) + tuple(shard.index[1:])
    out[where] = np.asarray(shard.data)[lo - a:hi - a]
    covered[where] = True
  if not covered.all():
    raise ValueError(f"rows [{start}, {stop}) of an array {x.shape} sharded as {x.sharding} are not all on this process")
  return out
