"""Deterministic, resumable batching of feature tables, and multi-task sampling.

A batch is a pure function of (seed, task, epoch, index), so the data position saved in a
checkpoint (`DataPosition`) restores the exact stream after preemption. Each process builds only
its slice of every global batch (multi-host). Rows added to fill the last batch carry
`example_mask` 0 and drop out of losses and metrics.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence

import numpy as np


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


@dataclasses.dataclass
class TaskStream:
  """Shuffled epochs over one task's training features."""

  name: str
  arrays: Mapping[str, np.ndarray]
  batch_size: int  # global
  seed: int
  drop_last: bool = False

  @property
  def num_rows(self) -> int:
    return int(next(iter(self.arrays.values())).shape[0])

  @property
  def batches_per_epoch(self) -> int:
    n = self.num_rows
    return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

  def order(self, epoch: int) -> np.ndarray:
    return _rng(self.seed, _task_key(self.name), epoch).permutation(self.num_rows)

  def global_rows(self, epoch: int, index: int) -> np.ndarray:
    order = self.order(epoch)
    return order[index * self.batch_size:(index + 1) * self.batch_size]

  def batch(self, epoch: int, index: int, process_index: int = 0, process_count: int = 1) -> dict[str, np.ndarray]:
    """This process's slice of global batch `index` of `epoch`."""
    rows = self.global_rows(epoch, index)
    full = take_rows(self.arrays, rows, self.batch_size)
    per = self.batch_size // process_count
    sl = slice(process_index * per, (process_index + 1) * per)
    return {k: v[sl] for k, v in full.items()}


@dataclasses.dataclass
class DataPosition:
  """Where the training stream is: the global step and each task's (epoch, batch index)."""

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
  next batch. Deterministic in the step, so resuming from a DataPosition replays the same stream."""

  def __init__(self, streams: Sequence[TaskStream], weights: Mapping[str, float], seed: int,
               process_index: int = 0, process_count: int = 1):
    self.streams = {s.name: s for s in streams}
    self.names = sorted(self.streams)
    self.probs = np.array([weights[n] for n in self.names], np.float64)
    self.seed = seed
    self.process_index, self.process_count = process_index, process_count

  def task_for_step(self, step: int) -> str:
    if len(self.names) == 1:
      return self.names[0]
    u = _rng(self.seed, 0x7A5C, step).random()
    return self.names[int(min(np.searchsorted(np.cumsum(self.probs), u, side="right"), len(self.names) - 1))]

  def iterate(self, pos: DataPosition) -> Iterator[tuple[str, dict[str, np.ndarray], DataPosition]]:
    """Yields (task, batch, position after this batch) forever, starting at `pos`."""
    pos = DataPosition(pos.step, dict(pos.tasks))
    while True:
      name = self.task_for_step(pos.step)
      stream = self.streams[name]
      epoch, index = pos.tasks.get(name, (0, 0))
      if index >= stream.batches_per_epoch:
        epoch, index = epoch + 1, 0
      batch = stream.batch(epoch, index, self.process_index, self.process_count)
      tasks = dict(pos.tasks)
      tasks[name] = (epoch, index + 1)
      pos = DataPosition(pos.step + 1, tasks)
      yield name, batch, pos


def eval_batches(arrays: Mapping[str, np.ndarray], batch_size: int) -> Iterator[tuple[np.ndarray, dict]]:
  """Every feature exactly once, in order; the last batch padded (example_mask 0)."""
  n = int(next(iter(arrays.values())).shape[0])
  for start in range(0, n, batch_size):
    rows = np.arange(start, min(start + batch_size, n))
    yield rows, take_rows(arrays, rows, batch_size)
