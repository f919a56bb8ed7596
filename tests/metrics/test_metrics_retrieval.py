"""Device kNN against numpy brute force, Tatoeba accuracy, and mAP@k by hand."""

import numpy as np
import pytest

from xtjax.errors import DataError
from xtjax.metrics import average_precision_at_k, knn, map_at_k, tatoeba_accuracy


def _brute_force(x, y, k, normalize=True):
  x, y = x.astype(np.float64), y.astype(np.float64)
  if normalize:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = y / np.linalg.norm(y, axis=1, keepdims=True)
  sims = x @ y.T
  idx = np.argsort(-sims, axis=1, kind="stable")[:, :k]
  return np.take_along_axis(sims, idx, axis=1), idx


@pytest.mark.parametrize("normalize", [True, False])
def test_knn_matches_numpy_across_padded_blocks(normalize):
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(53, 8)), rng.normal(size=(37, 8))
  # 53 queries in blocks of 16 and 37 database rows in blocks of 10: both get padded.
  scores, idx = knn(x, y, 5, batch=16, db_batch=10, normalize=normalize)
  ref_scores, ref_idx = _brute_force(x, y, 5, normalize)
  assert scores.shape == (53, 5) and idx.dtype == np.int64
  np.testing.assert_array_equal(idx, ref_idx)
  np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-5)


def test_knn_breaks_ties_towards_lower_index_across_blocks():
  v, w, u = [1.0, 0.0], [0.0, 1.0], [-1.0, 0.2]
  _, idx = knn(np.array([v]), np.array([w, v, u, v]), 2, db_batch=2)
  assert idx.tolist() == [[1, 3]]


def test_knn_rejects_bad_inputs():
  x = np.ones((2, 3))
  with pytest.raises(ValueError):
    knn(x, x, 3)
  with pytest.raises(DataError):
    knn(x, np.ones((2, 4)), 1)
  with pytest.raises(DataError):
    knn(np.full((2, 3), np.nan), x, 1)


def test_tatoeba_identity_plus_noise_is_perfect():
  rng = np.random.default_rng(1)
  src = rng.normal(size=(100, 16))
  eng = src + 0.01 * rng.normal(size=src.shape)
  assert tatoeba_accuracy(eng, src, batch=32) == 100.0


def test_tatoeba_permuted_targets():
  rng = np.random.default_rng(2)
  src = rng.normal(size=(100, 16))
  # Keep rows 0..29 in place and rotate the other 70 by one position: 30 fixed points.
  perm = np.concatenate([np.arange(30), np.roll(np.arange(30, 100), 1)])
  targets = src[perm]
  assert tatoeba_accuracy(src, targets) == 30.0
  # With the true alignment as gold (query i sits at row inverse_perm[i]) all are right.
  assert tatoeba_accuracy(src, targets, gold=np.argsort(perm)) == 100.0


def test_average_precision_reference_cases():
  # Cases from the Kaggle/LAReQA AP@k tests.
  assert average_precision_at_k([6, 4, 7, 1, 2], range(1, 6), k=2) == 0.25
  assert average_precision_at_k([1, 1, 1, 1, 1], range(1, 6), k=5) == 0.2
  assert average_precision_at_k(range(1, 6), [1, 3], k=3) == pytest.approx(5 / 6, abs=1e-15)
  assert average_precision_at_k([1, 1, 1], [1, 2, 3], k=3) == pytest.approx(1 / 3, abs=1e-15)
  assert average_precision_at_k([1, 2, 1], [1, 2, 3], k=3) == pytest.approx(2 / 3, abs=1e-15)


def test_map_at_20_by_hand():
  relevant_25 = [f"r{i}" for i in range(25)]
  ranked_3 = ["r0", "n0", "r1"] + [f"n{i}" for i in range(1, 18)] + ["r2"]  # r2 is at rank 21
  ranked = [["a", "b", "c", "d"], ["x", "x", "y"], ranked_3]
  relevant = [["b", "d"], ["x"], relevant_25]
  # AP: (1/2 + 2/4) / 2 = 1/2; 1/1 (the repeat earns nothing); (1/1 + 2/3) / min(25, 20) = 1/12.
  assert map_at_k(ranked, relevant, k=20) == pytest.approx(100 * (0.5 + 1 + 1 / 12) / 3, abs=1e-12)
  # Without the cut-off the third query also gets 3/21 and divides by 25.
  expected = 100 * (0.5 + 1 + (1 + 2 / 3 + 3 / 21) / 25) / 3
  assert map_at_k(ranked, relevant, k=None) == pytest.approx(expected, abs=1e-12)


def test_map_single_gold_is_mrr_at_k():
  # Mewsli-X: one gold entity per mention; rank 3 -> 1/3, beyond 20 or no prediction -> 0.
  ranked = [["e1", "e2", "gold"], [f"e{i}" for i in range(20)] + ["gold"], []]
  assert map_at_k(ranked, [["gold"]] * 3, k=20) == pytest.approx(100 / 9, abs=1e-12)
  with pytest.raises(DataError):
    map_at_k([["a"]], [[]])
  with pytest.raises(DataError):
    map_at_k([["a"]], [["a"], ["b"]])
