"""Evaluation split over processes: each featurises, runs and post-processes only its share of a split.

Every process reads a dev or test split's examples (cheap, and scoring needs them all) and deals
them round-robin over the processes: example e belongs to process e % P (`ShardSpec(P)`, whole
examples only, so a QA example's windows stay together). A process featurises only its examples,
through the feature cache (an entry per share, keyed by the layout: `data/cache.py`), runs them
(`BucketedPrograms.head_outputs(per_process=True)`), reads back only its own rows' outputs and runs
`task.predict` on its own examples. The predictions (small: a label, tags or an answer per example)
are then gathered to every process and joined in example order (`Task.join_predictions`), so the
metrics, computed on every process from the full ordered set, equal one process's and model
selection agrees everywhere. One process (P = 1) uses the whole-split cache entry, as before.
"""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from xtjax.data.cache import cached_features, cached_shard, read_examples
from xtjax.data.shards import ShardSpec
from xtjax.errors import DataError
from xtjax.parallel.distributed import allgather_bytes
from xtjax.tasks.base import Features


@dataclasses.dataclass
class EvalShare:
  """One split and language on this process: every example, and the features of its own examples."""

  examples: Sequence[Any]  # the whole split, on every process
  features: Features  # this process's examples' features; `example_index` counts the whole split
  spec: ShardSpec  # P shares: example e -> process e % P

  @property
  def example_ids(self) -> np.ndarray:
    """This process's examples, ascending."""
    return self.spec.example_ids(len(self.examples))

  def local(self) -> tuple[Sequence[Any], Features]:
    """(this process's examples, their features with `example_index` counting those examples)."""
    if self.spec.process_count == 1:
      return self.examples, self.features
    ids = self.example_ids
    index = np.searchsorted(ids, np.asarray(self.features.example_index, np.int64))
    return [self.examples[i] for i in ids], dataclasses.replace(self.features, example_index=index)


def eval_share(task, split: str, language: str, source, tokenizer, settings, cache_dir) -> EvalShare:
  """This process's share of one split and language (`cache_dir` None: no cache)."""
  pc = jax.process_count()
  if pc == 1:
    if cache_dir is not None:
      examples, features = cached_features(task, split, language, source, tokenizer, settings, cache_dir)
    else:
      examples = read_examples(task, split, language, source)
      features = task.featurize(examples, tokenizer, settings)
    return EvalShare(examples, features, ShardSpec(1))
  spec = ShardSpec(pc, jax.process_index(), pc)
  examples = read_examples(task, split, language, source)
  shard = cached_shard(task, split, language, source, tokenizer, settings, cache_dir, spec, examples)
  return EvalShare(examples, shard.features, spec)


def gather_predictions(task, share: EvalShare, local: Any) -> Any:
  """Every process's predictions of its own examples, joined in example order on every process.

  The parts travel pickled between the processes of this one job (`allgather_bytes`); nothing is
  read from files."""
  if share.spec.process_count == 1:
    return local
  pc, n = share.spec.process_count, len(share.examples)
  parts = [pickle.loads(b) for b in allgather_bytes(pickle.dumps((n, local), protocol=pickle.HIGHEST_PROTOCOL))]
  counts = [count for count, _ in parts]
  if any(c != n for c in counts):
    raise DataError(f"task {task.name!r}: the processes read different numbers of examples ({counts}); every host "
                    f"must see the same data")
  ids = [ShardSpec(pc, p, pc).example_ids(n) for p in range(pc)]
  return task.join_predictions([part for _, part in parts], ids, share.examples)
