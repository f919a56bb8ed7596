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
