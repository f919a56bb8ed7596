"""The one eval function (a head's f32 outputs, no dropout) and the compile-once-per-bucket runner that
training (dev and zero-shot evaluation) and the inference engine both call.

Inputs are padded up to a (batch size, length) bucket (`buckets.py`), so ragged last batches and
languages of different lengths reuse a compiled program; each program is compiled ahead of time
with explicit shardings and counted in `stats`.

`head_outputs` takes every row on every process; `process_head_outputs` takes only this process's
rows (evaluation split over processes, `shares.py`): the processes agree on the batches through one
all-gather of their row counts, each places its rows with `jax.make_array_from_process_local_data`
and reads back the outputs of its own rows from its addressable shards.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from xtjax.errors import XtjaxError
from xtjax.evaluation.buckets import Buckets, chunks, effective_length, pad_batch
from xtjax.models.heads import head_kind
from xtjax.parallel.batching import (
  batch_sharding,
  process_row_range,
  process_rows,
  put_global_batch,
  put_process_batch,
)
from xtjax.parallel.rules import Rules, traced_with_activation_sharding

log = logging.getLogger(__name__)

INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")


def head_fn(graphdef, task: str):
  """`fn(params, batch)`: the outputs of `task`'s head as f32, without dropout."""

  def fn(params, batch):
    return nnx.merge(graphdef, params).eval_outputs(task, batch)

  return fn


def to_host(x) -> np.ndarray:
  """A global array as host numpy (every process joins the gather on a multi-host mesh)."""
  if jax.process_count() > 1:
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(jax.device_get(x))


@dataclasses.dataclass
class ProgramStats:
  compilations: int = 0  # executables built (persistent-cache loads included)
  cache_hits: int = 0  # of those, loaded from the persistent compilation cache
  compile_seconds: float = 0.0
  calls: int = 0
  padded_rows: int = 0  # filler rows added to reach a batch bucket
  keys: list = dataclasses.field(default_factory=list)  # one per executable, in compilation order


class BucketedPrograms:
  """Compiled `fn(params, batch)` per (key, batch bucket, length bucket), built on first use."""

  def __init__(self, mesh: Mesh, rules: Rules, buckets: Buckets, pad_id: int = 0,
               cache_hits: Callable[[], int] = lambda: 0):
    self.mesh, self.rules, self.buckets, self.pad_id = mesh, rules, buckets, int(pad_id)
    self.cache_hits = cache_hits  # persistent compilation cache loads so far (the engine's counter)
    self.stats = ProgramStats()
    self.compiled: dict[tuple, Any] = {}

  def executable(self, key: tuple, fn: Callable, params, example: Mapping[str, np.ndarray]):
    """The compiled `fn` for `example`'s shapes (compiled now if `key` is new)."""
    if key in self.compiled:
      return self.compiled[key]
    batch_sh = {k: batch_sharding(self.mesh, self.rules, v.shape) for k, v in example.items()}
    abstract = {k: jax.ShapeDtypeStruct(v.shape, jnp.int32, sharding=batch_sh[k]) for k, v in example.items()}
    param_sh = jax.tree.map(lambda x: x.sharding, params)
    out_sh = None
    if jax.process_count() > 1:  # outputs split by rows like the inputs: each process reads its own
      rows = next(iter(example.values())).shape[0]
      out_sh = jax.tree.map(lambda o: batch_sharding(self.mesh, self.rules, o.shape) if o.ndim and o.shape[0] == rows
                            else NamedSharding(self.mesh, PartitionSpec()), jax.eval_shape(fn, params, abstract))
    t0, hits = time.perf_counter(), self.cache_hits()
    traced = traced_with_activation_sharding(fn, self.mesh, self.rules)  # layer activations split as in training
    exe = jax.jit(traced, in_shardings=(param_sh, batch_sh), out_shardings=out_sh).lower(params, abstract).compile()
    seconds = time.perf_counter() - t0
    self.stats.compile_seconds += seconds
    self.stats.compilations += 1
    self.stats.cache_hits += self.cache_hits() - hits
    self.stats.keys.append(key)
    self.compiled[key] = exe
    log.debug("compiled %s in %.2fs", key, seconds)
    return exe

  def pipelined(self, planned, key: Callable[[dict], tuple], fn: Callable, params) -> list:
    """Runs `fn` on each planned batch: `planned` yields (example, put, take): the batch's arrays or
    shapes (for its program), a thunk placing it on device, and a function from its device outputs to
    host outputs. A batch's outputs are taken after the next batch is dispatched, so host work and
    transfers overlap the device's."""
    outs, pending = [], None
    for example, put, take in planned:
      exe = self.executable(key(example), fn, params, example)
      self.stats.calls += 1
      out = exe(params, put())
      if pending is not None:
        outs.append(pending[1](pending[0]))
      pending = (out, take)
    if pending is not None:
      outs.append(pending[1](pending[0]))
    return outs

  def bucketed(self, arrays: Mapping[str, np.ndarray], length: int, key: Callable[[dict], tuple], fn: Callable,
               params, prepare: Callable | None = None) -> list:
    """Runs `fn` over bucket-sized chunks (every process takes every row); host outputs with the filler
    rows dropped, per chunk. `prepare(batch, rows)` may edit a chunk before it runs."""
    Lb = self.buckets.length(length)

    def planned():
      for rows, batch in chunks(arrays, self.buckets, Lb, self.pad_id):
        self.stats.padded_rows += batch["input_ids"].shape[0] - rows
        if prepare is not None:
          prepare(batch, rows)
        yield (batch, lambda batch=batch: put_global_batch(batch, self.mesh, self.rules),
               lambda out, rows=rows: jax.tree.map(lambda x: to_host(x)[:rows], out))

    return self.pipelined(planned(), key, fn, params)

  def process_bucketed(self, arrays: Mapping[str, np.ndarray], length: int, key: Callable[[dict], tuple],
                       fn: Callable, params) -> list:
    """`bucketed` over this process's rows only. Every process runs the same batches of the same
    shapes: batch i takes rows [i*b, (i+1)*b) of each process (b = the largest batch bucket / processes),
    padded to the bucket of the fullest process's rows; the length bucket fits every process's rows.
    Each process reads its rows of the outputs from its own shards."""
    pc, pi = jax.process_count(), jax.process_index()
    if pc == 1:
      return self.bucketed(arrays, length, key, fn, params)
    every = np.asarray(multihost_utils.process_allgather(np.array([len(next(iter(arrays.values()))), length])))
    counts, Lb = every[:, 0], self.buckets.length(int(every[:, 1].max()))
    per = self.buckets.batch_sizes[-1] // pc
    if per * pc != self.buckets.batch_sizes[-1]:
      raise XtjaxError(f"eval batch size {self.buckets.batch_sizes[-1]} is not divisible by {pc} processes")
    starts: dict[int, int] = {}  # global batch size -> the first global row this process holds

    def planned():
      for i in range(int(-(-counts.max() // per))):
        rows = np.clip(counts - i * per, 0, per)
        size = self.buckets.batch(pc * int(rows.max()))
        if size % pc:
          raise XtjaxError(f"batch bucket {size} is not divisible by {pc} processes")
        local = pad_batch({k: v[i * per:i * per + rows[pi]] for k, v in arrays.items()}, size // pc, Lb, self.pad_id)
        shapes = {k: jax.ShapeDtypeStruct((size,) + v.shape[1:], v.dtype) for k, v in local.items()}
        self.stats.padded_rows += size - int(rows.sum())
        if size not in starts:
          global_shape = shapes["input_ids"].shape
          starts[size] = process_row_range(batch_sharding(self.mesh, self.rules, global_shape), global_shape)[0]
        start, mine = starts[size], int(rows[pi])
        yield (shapes, lambda local=local: put_process_batch(local, self.mesh, self.rules),
               lambda out, a=start, n=mine: jax.tree.map(lambda x: process_rows(x, a, a + n), out))

    return self.pipelined(planned(), key, fn, params)

  def head_outputs(self, graphdef, params, task: str, head_type: str, inputs: Mapping[str, np.ndarray],
                   per_process: bool = False):
    """`task`'s head outputs in f32 numpy, one row per input row (a tuple of arrays for span heads).

    Heads that read the first token only run on the longest attended length (bucketed); span and
    tagging outputs keep the given width. `per_process`: `inputs` are this process's rows only (every
    process calls with its own), and so are the outputs.
    """
    arrays = {k: np.asarray(inputs[k]) for k in INPUT_KEYS if k in inputs}
    width = arrays["input_ids"].shape[-1]
    length = effective_length(arrays["attention_mask"]) if head_kind(head_type).first_token_only else width
    run = self.process_bucketed if per_process else self.bucketed
    outs = run(arrays, length, lambda b: head_key(task, b), head_fn(graphdef, task), params)
    out = jax.tree.map(lambda *xs: np.concatenate(xs), *outs)
    if not head_kind(head_type).first_token_only:  # the length bucket may be wider than the request
      out = jax.tree.map(lambda x: x[:, :width], out)
    return out


def head_key(task: str, batch: Mapping[str, np.ndarray]) -> tuple:
  ids = batch["input_ids"]
  return ("predict", task, ids.shape[0], ids.shape[-1], ids.shape[1:-1], tuple(sorted(batch)))


def length_buckets(max_length: int) -> tuple[int, ...]:
  """Powers of two from 32 below `max_length`, and `max_length` itself."""
  out, n = [], 32
  while n < max_length:
    out.append(n)
    n *= 2
  return tuple(out) + (max_length,)
