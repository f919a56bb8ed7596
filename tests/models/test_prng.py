"""The hash PRNG used for dropout in the benchmark train step: right rates, independent streams."""

import jax
import numpy as np

from xtjax.models.prng import make_key


def test_hash_prng_dropout_masks():
  key = make_key(0)
  a = np.asarray(jax.random.bernoulli(jax.random.fold_in(key, 1), 0.9, (64, 1024)))
  b = np.asarray(jax.random.bernoulli(jax.random.fold_in(key, 2), 0.9, (64, 1024)))
  assert abs(a.mean() - 0.9) < 0.005 and abs(b.mean() - 0.9) < 0.005
  assert abs((a == b).mean() - (0.9 ** 2 + 0.1 ** 2)) < 0.005  # independent streams
  again = np.asarray(jax.random.bernoulli(jax.random.fold_in(make_key(0), 1), 0.9, (64, 1024)))
  np.testing.assert_array_equal(a, again)  # deterministic in (seed, fold_in data)


def test_hash_prng_uniform_and_split():
  u = np.asarray(jax.random.uniform(make_key(3), (200_000,)))
  assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
  assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.01
  hist, _ = np.histogram(u, bins=10, range=(0, 1))
  assert hist.min() > 0.95 * 20_000 and hist.max() < 1.05 * 20_000
  keys = jax.random.key_data(jax.random.split(make_key(3), 8))
  assert len({tuple(k) for k in np.asarray(keys).tolist()}) == 8
