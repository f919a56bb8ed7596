"""Retrieval metrics: Tatoeba accuracy and XTREME-R's mAP@k (LAReQA, Mewsli-X).

The device kNN lives in `nearest.py` and BUCC mining in `bucc.py`; both are re-exported here
so every retrieval metric can be imported from this module.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from xtjax.errors import DataError
from xtjax.metrics.bucc import (bucc_candidates, bucc_extract, bucc_f1, bucc_mine,
                                bucc_optimize_threshold, margin_scores)
from xtjax.metrics.nearest import knn, l2_normalize

__all__ = [
    "average_precision_at_k", "bucc_candidates", "bucc_extract", "bucc_f1", "bucc_mine",
    "bucc_optimize_threshold", "knn", "l2_normalize", "map_at_k", "margin_scores",
    "tatoeba_accuracy",
]


def tatoeba_accuracy(queries_NxD, targets_MxD, gold=None, batch: int = 1024) -> float:
  """Percentage of queries whose cosine-nearest target is the gold one (default: row i).

  XTREME's run_retrieval.py indexes the non-English sentences and searches them with the
  English ones (`similarity_search(x=src, y=eng)`), so `tatoeba_accuracy(eng, src)` reproduces
  its numbers; LASER reports both directions.
  """
  queries_NxD = np.asarray(queries_NxD)
  gold_N = np.arange(len(queries_NxD)) if gold is None else np.asarray(gold)
  if gold_N.shape != (len(queries_NxD),):
    raise DataError(f"tatoeba: {len(gold_N)} gold indices for {len(queries_NxD)} queries")
  if len(queries_NxD) == 0:
    raise DataError("tatoeba: no queries")
  _, nearest_Nx1 = knn(queries_NxD, targets_MxD, 1, batch=batch)
  return 100.0 * float(np.sum(nearest_Nx1[:, 0] == gold_N)) / len(gold_N)


def average_precision_at_k(ranked: Sequence[Hashable], relevant: Sequence[Hashable],
                           k: int | None = 20) -> float:
  """AP@k in [0, 1] as LAReQA's `average_precision_at_k`.

  Precision is summed at each rank <= k holding a relevant candidate seen there for the first
  time (repeats earn nothing), then divided by min(#relevant, k). With one relevant item this
  is the reciprocal rank within the top k, Mewsli-X's MRR@k.
  """
  relevant = set(relevant)
  if not relevant:
    raise DataError("average_precision_at_k: a query has no relevant candidates")
  top = list(ranked[:k]) if k else list(ranked)
  hits, score, seen = 0, 0.0, set()
  for rank, candidate in enumerate(top, start=1):
    if candidate in relevant and candidate not in seen:
      hits += 1
      score += hits / rank
    seen.add(candidate)
  return score / (min(len(relevant), k) if k else len(relevant))


def map_at_k(ranked: Sequence[Sequence[Hashable]], relevant: Sequence[Sequence[Hashable]],
             k: int | None = 20) -> float:
  """mAP@k in percent: mean AP@k over queries (XTREME-R uses k=20).

  `ranked[q]` is query q's candidates best first (may be empty: scores 0); `relevant[q]` its
  correct candidates.
  """
  if len(ranked) != len(relevant):
    raise DataError(f"map_at_k: {len(ranked)} rankings for {len(relevant)} queries")
  if not ranked:
    raise DataError("map_at_k: no queries")
  return 100.0 * float(np.mean([average_precision_at_k(r, g, k)
                                for r, g in zip(ranked, relevant)]))
