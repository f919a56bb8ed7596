"""Which training examples each process featurises, and where their rows go in a global batch.

A task's training examples are dealt round-robin into S example shards (example e -> shard e % S),
S = the global batch size. Process p of P owns the S/P contiguous shards [p*S/P, (p+1)*S/P) and
reads, tokenises and holds only their examples' features (QA windows included: every window of an
example lives in its example's shard). Each global batch takes B/S rows (one, with S = B) from every
shard, shard after shard, so process p's rows are exactly its slice of the batch, rows
[p*B/P, (p+1)*B/P), which is what `put_process_batch` places.

Why this layout:
- The batches depend on S, never on P: one process and P processes train on the same global batches,
  and a checkpoint resumes exactly on another number of hosts (any P dividing S).
- Processes agree on the steps per epoch without any one of them seeing all features: each
  contributes the sizes of its shards to one all-gather (`gather_shard_sizes`); an epoch has
  max over shards of ceil(size / (B/S)) batches. A shard that has run out fills its rows with
  padding (`example_mask` 0), which the loss's sum / count accounting drops; with round-robin shards
  of one feature per example that is at most one padded row per shard in the last batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from xtjax.errors import DataError, XtjaxError


@dataclasses.dataclass(frozen=True)
class ShardSpec:
  """S example shards, and the ones process `process_index` of `process_count` owns."""

  num_shards: int
  process_index: int = 0
  process_count: int = 1

  def __post_init__(self):
    if self.num_shards < 1 or self.num_shards % self.process_count:
      raise XtjaxError(f"{self.num_shards} example shards (the batch size) cannot be split over "
                       f"{self.process_count} processes")

  @property
  def owned(self) -> range:
    per = self.num_shards // self.process_count
    return range(self.process_index * per, (self.process_index + 1) * per)

  def example_ids(self, num_examples: int) -> np.ndarray:
    """This process's examples of a split of `num_examples`, ascending."""
    shard = np.arange(num_examples) % self.num_shards
    return np.flatnonzero((shard >= self.owned.start) & (shard < self.owned.stop))

  def check_every_process_has_examples(self, task: str, num_examples: int) -> None:
    """Every process must own an example (its padding rows copy one). Decided from the count alone,
    so all processes raise together instead of leaving the others waiting at a collective."""
    last_first_shard = self.num_shards - self.num_shards // self.process_count
    if num_examples <= last_first_shard:
      raise DataError(f"task {task!r}: {num_examples} examples in {self.num_shards} shards leave process "
                      f"{self.process_count - 1} of {self.process_count} without examples; use more examples or "
                      f"fewer shards (training: a smaller batch_size; evaluation: fewer processes)")

  def tag(self) -> str:
    """'shards0-3of8': names this process's part in cache entries and logs."""
    return f"shards{self.owned.start}-{self.owned.stop - 1}of{self.num_shards}"


@dataclasses.dataclass
class FeatureShard:
  """One task's training features on this process: the rows of its own examples only."""

  task: str
  num_examples: int  # in the whole split (the same on every process)
  features: object  # tasks.base.Features; `example_index` counts examples of the whole split
  spec: ShardSpec

  @property
  def example_ids(self) -> np.ndarray:
    return np.asarray(self.features.example_index, np.int64)

  def local_shard_sizes(self) -> np.ndarray:
    """[S] feature rows per shard: this process's shards filled in, the others 0."""
    return np.bincount(self.example_ids % self.spec.num_shards, minlength=self.spec.num_shards)


def gather_shard_sizes(shards: Sequence[FeatureShard]) -> list[np.ndarray]:
  """[S] feature rows of every shard of each task, from all processes (one all-gather in all), after
  checking that every process read the same number of examples."""
  if not shards:  # an evaluation-only phase trains on nothing (every process alike: no collective)
    return []
  local = np.stack([np.concatenate([[s.num_examples], s.local_shard_sizes()]) for s in shards]).astype(np.int64)
  if shards and shards[0].spec.process_count > 1:
    from jax.experimental import multihost_utils

    every = np.asarray(multihost_utils.process_allgather(local))  # [P, tasks, 1 + S]
  else:
    every = local[None]
  out = []
  for t, shard in enumerate(shards):
    counts = every[:, t, 0]
    if (counts != shard.num_examples).any():
      raise DataError(f"task {shard.task!r}: the processes read different numbers of training examples "
                      f"({counts.tolist()}); every host must see the same data")
    out.append(every[:, t, 1:].sum(0))
  return out
