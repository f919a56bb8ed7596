"""BUCC: ratio margin by hand, greedy 'max' mining, threshold tuning and P/R/F1."""

import numpy as np
import pytest

from xtjax.errors import DataError
from xtjax.metrics import (bucc_candidates, bucc_extract, bucc_f1, bucc_mine,
                           bucc_optimize_threshold, margin_scores)

# Dyadic scores so that midpoints are exact.
DEV = {("s1", "t1"): 0.875, ("s2", "t2"): 0.75, ("s3", "t9"): 0.625, ("s4", "t4"): 0.5,
       ("s5", "t8"): 0.375}
DEV_GOLD = [("s1", "t1"), ("s2", "t2"), ("s4", "t4"), ("s6", "t6")]


def test_optimize_threshold_by_hand():
  # Walking down: F1 = 0.4, 2/3, 4/7, 3/4 (after s4-t4), 2/3 -> best after the 4th candidate,
  # threshold halfway to the 5th: (0.5 + 0.375) / 2.
  assert bucc_optimize_threshold(DEV, DEV_GOLD) == 0.4375
  assert bucc_f1(DEV, DEV_GOLD, 0.4375) == {"precision": 75.0, "recall": 75.0, "f1": 75.0}


def test_dev_threshold_applied_to_test():
  test = {("a", "b"): 0.9, ("c", "d"): 0.44, ("e", "f"): 0.43, ("g", "h"): 0.1}
  gold = {("a", "b"), ("c", "d"), ("x", "y")}
  assert bucc_extract(test, 0.4375) == [("a", "b"), ("c", "d")]
  out = bucc_f1(test, gold, 0.4375)
  assert out == pytest.approx({"precision": 100.0, "recall": 200 / 3, "f1": 80.0}, abs=1e-12)
  assert bucc_f1(test, gold, 0.95) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_optimize_threshold_edge_cases():
  # Best F1 on the last candidate: its own score (upstream would index past the end).
  both_right = {("a", "a"): 0.75, ("b", "b"): 0.5}
  assert bucc_optimize_threshold(both_right, [("a", "a"), ("b", "b")]) == 0.5
  # Nothing correct: upstream's initial 0.
  assert bucc_optimize_threshold({("a", "b"): 0.75}, [("a", "a")]) == 0.0
  with pytest.raises(DataError):
    bucc_optimize_threshold(DEV, [])


def test_margin_scores_by_hand():
  x = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
  y = np.array([[0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]])
  fwd, fwd_ind, bwd, bwd_ind = margin_scores(x, y, k=2)
  cos = x @ y.T  # rows are unit length already
  fwd_mean = np.sort(cos, axis=1)[:, -2:].mean(axis=1)
  bwd_mean = np.sort(cos.T, axis=1)[:, -2:].mean(axis=1)
  # x0: cosines to y = [0.8, 0, -1] -> neighbours y0, y1, mean 0.4; y0: cosines to x =
  # [0.8, 0.96, 0.6] -> mean of 0.96 and 0.8 = 0.88. score(x0, y0) = 0.8 / ((0.4 + 0.88) / 2).
  assert fwd_ind[0].tolist() == [0, 1]
  assert fwd[0, 0] == pytest.approx(0.8 / 0.64, rel=1e-6)
  for i in range(3):
    for j, t in enumerate(fwd_ind[i]):
      assert fwd[i, j] == pytest.approx(cos[i, t] / ((fwd_mean[i] + bwd_mean[t]) / 2), rel=1e-6)
    for j, s in enumerate(bwd_ind[i]):
      assert bwd[i, j] == pytest.approx(cos[s, i] / ((bwd_mean[i] + fwd_mean[s]) / 2), rel=1e-6)


def test_mine_and_tune_on_synthetic_corpus():
  rng = np.random.default_rng(0)
  dim, n_pairs = 32, 30
  src = rng.normal(size=(40, dim))  # rows 30..39 have no translation
  trg = rng.normal(size=(50, dim))
  trg_rows = rng.permutation(50)[:n_pairs]
  trg[trg_rows] = src[:n_pairs] + 0.05 * rng.normal(size=(n_pairs, dim))
  mined = bucc_mine(src, trg, k=4)
  scores = [s for _, _, s in mined]
  assert scores == sorted(scores, reverse=True)
  assert len({s for s, _, _ in mined}) == len(mined) == len({t for _, t, _ in mined})

  src_ids = [f"de-{i}" for i in range(40)]
  trg_ids = [f"en-{j}" for j in range(50)]
  candidates = bucc_candidates(mined, src_ids, trg_ids)
  gold = {(f"de-{i}", f"en-{trg_rows[i]}") for i in range(n_pairs)}
  assert gold <= set(candidates)
  min_true = min(candidates[p] for p in gold)
  max_false = max(s for p, s in candidates.items() if p not in gold)
  assert min_true > max_false
  threshold = bucc_optimize_threshold(candidates, gold)
  assert threshold == (min_true + max_false) / 2
  assert bucc_f1(candidates, gold, threshold) == {"precision": 100.0, "recall": 100.0, "f1": 100.0}

  # A source row mapped to None (a duplicated sentence) drops its pairs.
  src_ids[0] = None
  assert len(bucc_candidates(mined, src_ids, trg_ids)) == len(candidates) - 1


def test_bucc_candidates_keeps_best_score_per_id_pair():
  mined = [(0, 0, 2.0), (1, 1, 1.5), (2, 2, 1.25)]
  # Rows 0 and 2 carry the same sentence ids (same text): the higher score wins.
  assert bucc_candidates(mined, ["a", "b", "a"], ["x", "y", "x"]) == {("a", "x"): 2.0,
                                                                      ("b", "y"): 1.5}
