"""The training loader: this process's slice of every batch of the multi-task stream, built and put
on the mesh in a background thread while the previous step runs.

The pipeline is grain's: `MapDataset.range(start, stop)` over steps -> the host batch of each step
(`MultiTaskStream.at`, random access) -> the global jax arrays (`put_process_batch`, i.e.
`jax.make_array_from_process_local_data` on several hosts) -> `ThreadPrefetchIterDataset`, which
runs both in one thread `prefetch` steps ahead. A thread suffices (no worker processes): a batch is
a gather of B/P rows tokenised once before training (`xtjax.data.shards`), about 0.5 ms, while the
step runs in XLA without the GIL. grain adds about 0.1 ms per batch over a direct call.

Resume: a batch is a pure function of its step, so the iterator's whole state is the step (grain's
own state for this iterator is the same next index). The checkpoint's `DataPosition` carries it,
with each task's (epoch, index), which `resume` checks against this run's stream.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

import grain
import grain.experimental

from xtjax.data.batching import DataPosition, MultiTaskStream, TaskStream
from xtjax.data.shards import FeatureShard, gather_shard_sizes
from xtjax.errors import XtjaxError


def task_streams(shards: Sequence[FeatureShard], batch_size: int, seed: int) -> list[TaskStream]:
  """Each task's stream over this process's rows, laid out by the shard sizes all processes report."""
  sizes = gather_shard_sizes(shards)
  return [TaskStream(s.task, s.features.arrays, s.example_ids, n, batch_size, seed, s.spec)
          for s, n in zip(shards, sizes)]


class TrainLoader:
  """`iterate(start, stop)` yields (task, batch on the mesh, position after it) for steps start..stop-1."""

  def __init__(self, stream: MultiTaskStream, put: Callable[[Mapping], dict], prefetch: int = 2):
    self.stream, self.put, self.prefetch = stream, put, prefetch
    # How long the loop waited for its batches (the input pipeline's share of the run): in all, and recently.
    self.wait_total = 0.0
    self.recent_waits: collections.deque[float] = collections.deque(maxlen=1024)

  def host_batch(self, step: int) -> tuple[str, dict]:
    return self.stream.at(step)

  def device_batch(self, host: Mapping) -> dict:
    return self.put(host)

  def position(self, step: int) -> DataPosition:
    return self.stream.position(step)

  def resume(self, saved: Mapping) -> DataPosition:
    """The checkpoint's data position, refused if this run's stream would not continue it."""
    pos = DataPosition.from_json(saved)
    expected = self.position(pos.step)
    if pos != expected:
      raise XtjaxError(f"the checkpoint's data position {pos.to_json()} is not this run's stream at step {pos.step} "
                       f"({expected.to_json()}): the training data or the batching changed since it was saved")
    return pos

  def iterate(self, start: int, stop: int) -> Iterator[tuple[str, dict, DataPosition]]:
    def place(element):
      name, host = element
      return name, self.device_batch(host)

    ds = grain.MapDataset.range(start, stop).map(self.host_batch)
    ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)).map(place)
    it = iter(grain.experimental.ThreadPrefetchIterDataset(ds, prefetch_buffer_size=self.prefetch))
    try:
      for step in range(start, stop):
        t0 = time.perf_counter()
        name, batch = next(it)
        waited = time.perf_counter() - t0
        self.wait_total += waited
        self.recent_waits.append(waited)
        yield name, batch, self.position(step + 1)
    finally:
      it.close()
