"""BUCC 2018 parallel-sentence mining: ratio-margin scoring, F1-optimal threshold, P/R/F1.

Follows XTREME's `third_party/utils_retrieve.py` (from LASER): `mine_bitext` with
margin='ratio', retrieval='max', k=4 neighbours; `bucc_optimize` on dev gold; extraction of
every candidate scoring >= threshold; scores in percent as `evaluate.bucc_f1`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence

import numpy as np

from xtjax.errors import DataError
from xtjax.metrics.nearest import knn, l2_normalize

Pair = tuple[Hashable, Hashable]


def margin_scores(src_NxD, trg_MxD, k: int = 4, batch: int = 1024, db_batch: int = 65536):
  """Ratio-margin scores of each sentence's k nearest candidates, in both directions.

    score(x, y) = cos(x, y) / (sum_{y' in NN_k(x)} cos(x, y') / 2k
                               + sum_{x' in NN_k(y)} cos(y, x') / 2k)
  where NN_k(x) are x's k nearest targets and NN_k(y) y's k nearest sources (k is capped by
  the other side's size).
  Returns (fwd_scores_NxK, fwd_indices_NxK, bwd_scores_MxK, bwd_indices_MxK).
  """
  x_NxD, y_MxD = l2_normalize(src_NxD), l2_normalize(trg_MxD)
  fwd_sim, fwd_ind = knn(x_NxD, y_MxD, min(len(y_MxD), k), batch, db_batch, normalize=False)
  bwd_sim, bwd_ind = knn(y_MxD, x_NxD, min(len(x_NxD), k), batch, db_batch, normalize=False)
  fwd_mean_N = fwd_sim.mean(axis=1)
  bwd_mean_M = bwd_sim.mean(axis=1)
  fwd_scores = fwd_sim / ((fwd_mean_N[:, None] + bwd_mean_M[fwd_ind]) / 2)
  bwd_scores = bwd_sim / ((bwd_mean_M[:, None] + fwd_mean_N[bwd_ind]) / 2)
  return fwd_scores, fwd_ind, bwd_scores, bwd_ind


def bucc_mine(src_NxD, trg_MxD, k: int = 4, threshold: float = 0.0, batch: int = 1024,
              db_batch: int = 65536) -> list[tuple[int, int, float]]:
  """Mined (src_row, trg_row, score) triples, best first, as LASER's 'max' retrieval.

  Each source sentence proposes its best-scoring target and each target its best source; the
  proposals are taken greedily by decreasing score, skipping any whose source or target was
  already used, and kept when score > threshold. Equal scores keep forward-before-backward
  order (a stable sort; upstream's quicksort leaves it unspecified). Rows should be unique
  sentences: XTREME de-duplicates texts before embedding.
  """
  fwd_scores, fwd_ind, bwd_scores, bwd_ind = margin_scores(src_NxD, trg_MxD, k, batch, db_batch)
  n, m = len(fwd_scores), len(bwd_scores)
  fwd_best = fwd_ind[np.arange(n), fwd_scores.argmax(axis=1)]
  bwd_best = bwd_ind[np.arange(m), bwd_scores.argmax(axis=1)]
  src = np.concatenate([np.arange(n), bwd_best])
  trg = np.concatenate([fwd_best, np.arange(m)])
  scores = np.concatenate([fwd_scores.max(axis=1), bwd_scores.max(axis=1)])
  mined, seen_src, seen_trg = [], set(), set()
  for i in np.argsort(-scores, kind="stable"):
    s, t = int(src[i]), int(trg[i])
    if s in seen_src or t in seen_trg:
      continue
    seen_src.add(s)
    seen_trg.add(t)
    if scores[i] > threshold:
      mined.append((s, t, float(scores[i])))
  return mined


def bucc_candidates(mined: Iterable[tuple[int, int, float]], src_ids: Sequence[Hashable | None],
                    trg_ids: Sequence[Hashable | None]) -> dict[Pair, float]:
  """Maps mined row pairs to BUCC sentence-id pairs, keeping the best score per id pair.

  `src_ids[row]` is the id of that row's sentence, or None to drop it (XTREME drops sentences
  whose text occurs under more than one id).
  """
  candidates: dict[Pair, float] = {}
  for s, t, score in mined:
    src_id, trg_id = src_ids[s], trg_ids[t]
    if src_id is None or trg_id is None:
      continue
    key = (src_id, trg_id)
    candidates[key] = max(score, candidates.get(key, score))
  return candidates


def _gold_set(gold: Iterable[Pair]) -> set[Pair]:
  gold = {tuple(p) for p in gold}
  if not gold:
    raise DataError("BUCC: no gold pairs")
  return gold


def bucc_optimize_threshold(candidates: Mapping[Pair, float], gold: Iterable[Pair]) -> float:
  """The F1-best threshold on dev: midpoint between the last kept and the next score.

  Candidates are walked by decreasing score (ties in insertion order); when the best F1 falls
  on the last candidate, where upstream indexes past the end, its own score is returned. With
  no correct candidate at all the threshold is 0, as upstream.
  """
  gold = _gold_set(gold)
  items = sorted(candidates.items(), key=lambda kv: -kv[1])
  n_extract = n_correct = 0
  threshold, best_f1 = 0.0, 0.0
  for i, (pair, score) in enumerate(items):
    n_extract += 1
    n_correct += pair in gold
    if n_correct:
      precision, recall = n_correct / n_extract, n_correct / len(gold)
      f1 = 2 * precision * recall / (precision + recall)
      if f1 > best_f1:
        best_f1 = f1
        threshold = (score + items[i + 1][1]) / 2 if i + 1 < len(items) else score
  return threshold


def bucc_extract(candidates: Mapping[Pair, float], threshold: float) -> list[Pair]:
  """The predicted parallel pairs: every candidate with score >= threshold."""
  return [pair for pair, score in candidates.items() if score >= threshold]


def bucc_f1(candidates: Mapping[Pair, float], gold: Iterable[Pair],
            threshold: float) -> dict[str, float]:
  """{"precision", "recall", "f1"} in percent of the pairs extracted at `threshold`."""
  gold = _gold_set(gold)
  predicted = set(bucc_extract(candidates, threshold))
  n_correct = len(gold & predicted)
  if not n_correct:
    return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
  precision, recall = n_correct / len(predicted), n_correct / len(gold)
  f1 = 2 * precision * recall / (precision + recall)
  return {"precision": 100 * precision, "recall": 100 * recall, "f1": 100 * f1}
