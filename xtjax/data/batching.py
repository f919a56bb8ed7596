"""Deterministic, resumable batching of feature tables, and multi-task sampling.

A batch is a pure function of (seed, task, epoch, index), and the task of a step a pure function of
(seed, step), so the step saved in a checkpoint (`DataPosition`) restores the exact stream after
preemption, on any number of processes. Each process holds and builds only its example shards'
rows of every global batch (`xtjax.data.shards`). Rows added to fill a batch carry `example_mask` 0
and drop out of losses and metrics.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from xtjax.data.shards import ShardSpec
from xtjax.errors import XtjaxError

_BLOCK = 4096  # steps whose tasks are drawn by one generator


def _rng(*keys: int) -> np.random.Generator:
  return np.random.default_rng([int(k) & 0xFFFFFFFF for k in keys])


def _task_key(name: str) -> int:
  # Stable across processes and runs (Python's hash() is salted).
  h = 0
  for ch in name.encode():
    h = (h * 131 + ch) & 0xFFFFFFFF
  return h


def take_rows(arrays: Mapping[str, np.ndarray], rows: np.ndarray, size: int) -> dict[str, np.ndarray]:
  """Rows `rows` of every array, padded with copies of row 0 up to `size`, plus `example_mask`."""
  n = len(rows)
  idx = np.concatenate([rows, np.zeros(size - n, np.int64)]) if n < size else rows
  out = {k: v[idx] for k, v in arrays.items()}
  mask = np.zeros(size, np.int32)
  mask[:n] = 1
  out["example_mask"] = mask
  return out


class TaskStream:
  """Shuffled epochs over one task's training features, laid out in example shards.

  `arrays` are this process's feature rows, `example_ids` the example (of the whole split) of each
  row, `shard_sizes` the rows of every shard on all processes. Each epoch shuffles every shard
  apart; global batch i takes rows [i*r, (i+1)*r) of each shard's order (r = batch_size / shards),
  padded once the shard is spent.
  """

  def __init__(self, name: str, arrays: Mapping[str, np.ndarray], example_ids: np.ndarray,
               shard_sizes: Sequence[int], batch_size: int, seed: int, spec: ShardSpec):
    if batch_size % spec.num_shards:
      raise XtjaxError(f"batch size {batch_size} is not a multiple of the {spec.num_shards} example shards")
    self.name, self.arrays, self.batch_size, self.seed, self.spec = name, arrays, batch_size, seed, spec
    self.rows_per_shard = batch_size // spec.num_shards
    self.shard_sizes = np.asarray(shard_sizes, np.int64)
    shard_of_row = np.asarray(example_ids, np.int64) % spec.num_shards
    self.example_ids = np.asarray(example_ids, np.int64)
    # Rows of each owned shard in example order, the order every process count agrees on.
    self.shard_rows = [np.flatnonzero(shard_of_row == s) for s in spec.owned]
    self._cached_orders: tuple[int, np.ndarray] | None = None
    got = [len(r) for r in self.shard_rows]
    if got != self.shard_sizes[spec.owned.start:spec.owned.stop].tolist():
      raise XtjaxError(f"task {name!r}: shard sizes {self.shard_sizes.tolist()} do not match this process's rows {got}")

  @classmethod
  def whole(cls, name: str, arrays: Mapping[str, np.ndarray], batch_size: int, seed: int,
            example_ids: np.ndarray | None = None) -> TaskStream:
    """One process holding every row (tests, benchmarks)."""
    n = int(next(iter(arrays.values())).shape[0])
    ids = np.arange(n) if example_ids is None else np.asarray(example_ids)
    spec = ShardSpec(batch_size)
    return cls(name, arrays, ids, np.bincount(ids % batch_size, minlength=batch_size), batch_size, seed, spec)

  @property
  def num_rows(self) -> int:
    """Feature rows of the whole split (every process)."""
    return int(self.shard_sizes.sum())

  @property
  def batches_per_epoch(self) -> int:
    return max(1, int(math.ceil(self.shard_sizes.max() / self.rows_per_shard)))

  def _orders(self, epoch: int) -> np.ndarray:
    """[owned shards, batches_per_epoch * r]: this process's rows of each owned shard in epoch
    `epoch`'s order, -1 past a shard's end. Kept for the current epoch: drawing the permutations per
    batch would cost more than the batch."""
    cached = self._cached_orders
    if cached is None or cached[0] != epoch:
      key = _task_key(self.name)
      table = np.full((len(self.shard_rows), self.batches_per_epoch * self.rows_per_shard), -1, np.int64)
      for i, (s, rows) in enumerate(zip(self.spec.owned, self.shard_rows)):
        table[i, :len(rows)] = rows[_rng(self.seed, key, epoch, s).permutation(len(rows))]
      cached = (epoch, table)
      self._cached_orders = cached  # one tuple assignment: safe with the loader's thread
    return cached[1]

  def rows(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(local rows [batch_size / P], valid [batch_size / P]) of this process's slice of global batch `index`;
    a spent shard's rows are row 0, not valid."""
    r = self.rows_per_shard
    take = self._orders(epoch)[:, index * r:(index + 1) * r].reshape(-1)
    valid = take >= 0
    return np.where(valid, take, 0), valid

  def batch(self, epoch: int, index: int) -> dict[str, np.ndarray]:
    """This process's slice of global batch `index` of `epoch` (padding rows copy row 0, masked)."""
    rows, valid = self.rows(epoch, index)
    out = {k: v[rows] for k, v in self.arrays.items()}
    out["example_mask"] = valid.astype(np.int32)
    return out


@dataclasses.dataclass
class DataPosition:
  """Where the training stream is: the global step and each task's (epoch, batch index) next."""

  step: int = 0
  tasks: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)

  def to_json(self) -> dict:
    return {"step": self.step, "tasks": {k: list(v) for k, v in self.tasks.items()}}

  @classmethod
  def from_json(cls, d: Mapping) -> DataPosition:
    return cls(int(d["step"]), {k: (int(v[0]), int(v[1])) for k, v in d["tasks"].items()})


def sampling_weights(sizes: Mapping[str, int], rule: str, cap: int = 20000, temperature: float = 2.0,
                     overrides: Mapping[str, float | None] | None = None) -> dict[str, float]:
  """Task probabilities: proportional to size, to min(size, cap), to size**(1/T), or uniform.

  `overrides[task]` fixes that task's share of steps (e.g. 0.1 for "MLM on 10% of batches"); the
  other tasks split the rest by the rule.
  """
  w = {}
  for name, n in sizes.items():
    if rule == "proportional":
      w[name] = float(n)
    elif rule == "capped":
      w[name] = float(min(n, cap))
    elif rule == "temperature":
      w[name] = float(n) ** (1.0 / temperature)
    elif rule == "uniform":
      w[name] = 1.0
    else:
      raise ValueError(f"unknown sampling rule {rule!r}")
  fixed = {k: float(v) for k, v in (overrides or {}).items() if v is not None and k in sizes}
  if any(not 0.0 < v <= 1.0 for v in fixed.values()) or sum(fixed.values()) > 1.0 + 1e-9:
    raise ValueError(f"task weights must be shares in (0, 1] summing to at most 1, got {fixed}")
  rest = {k: v for k, v in w.items() if k not in fixed}
  left = 1.0 - sum(fixed.values())
  total = sum(rest.values())
  out = {k: (v / total) * left if total > 0 else 0.0 for k, v in rest.items()}
  out.update(fixed)
  norm = sum(out.values())
  return {k: v / norm for k, v in out.items()}


class MultiTaskStream:
  """Draws the task of each step from the sampling weights (seeded by the step), then that task's
  next batch. Random access in the step (`at`), so resuming from a DataPosition replays the same
  stream and a prefetching loader may run ahead."""

  def __init__(self, streams: Sequence[TaskStream], weights: Mapping[str, float], seed: int):
    self.streams = {s.name: s for s in streams}
    self.names = sorted(self.streams)
    self.cum_probs = np.cumsum(np.array([weights[n] for n in self.names], np.float64))
    self.seed = seed
    self._lock = threading.Lock()  # the schedule grows from the loader's thread and the loop's
    self._task_ids = np.zeros(0, np.int64)  # task of each step drawn so far
    self._numbers = np.zeros(0, np.int64)  # that task's batch number at each step
    self._steps_of: list[np.ndarray] = []  # the steps of each task, ascending

  def _draw(self, block: int) -> np.ndarray:
    if len(self.names) == 1:
      return np.zeros(_BLOCK, np.int64)
    u = _rng(self.seed, 0x7A5C, block).random(_BLOCK)
    return np.minimum(np.searchsorted(self.cum_probs, u, side="right"), len(self.names) - 1)

  def _schedule(self, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """(task id, that task's batch number) of steps [0, stop)."""
    with self._lock:
      if len(self._task_ids) < stop:
        have = len(self._task_ids) // _BLOCK  # always whole blocks; grown geometrically
        blocks = range(have, max(-(-stop // _BLOCK), 2 * have))
        ids = np.concatenate([self._task_ids] + [self._draw(b) for b in blocks])
        numbers = np.zeros(len(ids), np.int64)
        self._steps_of = [np.flatnonzero(ids == t) for t in range(len(self.names))]
        for steps in self._steps_of:
          numbers[steps] = np.arange(len(steps))
        self._task_ids, self._numbers = ids, numbers
      return self._task_ids[:stop], self._numbers[:stop]

  def task_for_step(self, step: int) -> str:
    return self.names[int(self._schedule(step + 1)[0][step])]

  def at(self, step: int) -> tuple[str, dict[str, np.ndarray]]:
    """(task, this process's slice of its batch) of `step`."""
    ids, numbers = self._schedule(step + 1)
    stream = self.streams[self.names[int(ids[step])]]
    epoch, index = divmod(int(numbers[step]), stream.batches_per_epoch)
    return stream.name, stream.batch(epoch, index)

  def position(self, step: int) -> DataPosition:
    """The position after `step` batches: each task's next (epoch, index)."""
    self._schedule(max(step, 1))
    drawn = [int(np.searchsorted(steps, step)) for steps in self._steps_of]
    return DataPosition(step, {n: divmod(drawn[t], self.streams[n].batches_per_epoch)
                               for t, n in enumerate(self.names)})

  def iterate(self, pos: DataPosition) -> Iterator[tuple[str, dict[str, np.ndarray], DataPosition]]:
    """Yields (task, batch, position after this batch) forever, starting at `pos`."""
    step = pos.step
    while True:
      name, batch = self.at(step)
      step += 1
      yield name, batch, self.position(step)


def eval_batches(arrays: Mapping[str, np.ndarray], batch_size: int) -> Iterator[tuple[np.ndarray, dict]]:
  """Every feature exactly once, in order; the last batch padded (example_mask 0)."""
  n = int(next(iter(arrays.values())).shape[0])
  for start in range(0, n, batch_size):
    rows = np.arange(start, min(start + batch_size, n))
    yield rows, take_rows(arrays, rows, batch_size)
