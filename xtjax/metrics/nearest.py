"""Exact cosine (or inner-product) k-nearest neighbours on the accelerator, in place of faiss.

Queries and database are cut into fixed-size blocks (the last one padded), so one jitted program
serves a whole search: per query block, a `lax.scan` over database blocks keeps a running top-k.
Ties go to the lower database index, like a stable sort.
"""

from __future__ import annotations

import functools

import numpy as np

from xtjax.errors import DataError


def l2_normalize(x_NxD: np.ndarray) -> np.ndarray:
  """Rows scaled to unit length in float32; all-zero rows stay zero (as faiss.normalize_L2)."""
  x_NxD = np.asarray(x_NxD, dtype=np.float32)
  norms_Nx1 = np.linalg.norm(x_NxD, axis=1, keepdims=True)
  return x_NxD / np.where(norms_Nx1 == 0, 1.0, norms_Nx1)


def _merge_top_k(s_a_BxK, i_a_BxK, s_b_BxK, i_b_BxK, k):
  import jax
  import jax.numpy as jnp

  # `a` holds lower database indices, so on equal scores top_k keeps it first.
  s_Bx2K = jnp.concatenate([s_a_BxK, s_b_BxK], axis=1)
  i_Bx2K = jnp.concatenate([i_a_BxK, i_b_BxK], axis=1)
  s_BxK, pos_BxK = jax.lax.top_k(s_Bx2K, k)
  return s_BxK, jnp.take_along_axis(i_Bx2K, pos_BxK, axis=1)


def _search_block(x_BxD, y_NbxCxD, num_valid, k):
  """Top-k inner products of one query block against all database blocks."""
  import jax
  import jax.numpy as jnp

  num_blocks, block, _ = y_NbxCxD.shape
  offsets_Nb = jnp.arange(num_blocks, dtype=jnp.int32) * block

  def step(carry, inputs):
    y_CxD, offset = inputs
    sims_BxC = jnp.matmul(x_BxD, y_CxD.T, precision=jax.lax.Precision.HIGHEST)
    cols_C = offset + jnp.arange(block, dtype=jnp.int32)
    sims_BxC = jnp.where(cols_C[None, :] < num_valid, sims_BxC, -jnp.inf)
    s_BxK, i_BxK = jax.lax.top_k(sims_BxC, k)
    return _merge_top_k(*carry, s_BxK, i_BxK + offset, k), None

  init = (jnp.full((x_BxD.shape[0], k), -jnp.inf, x_BxD.dtype),
          jnp.full((x_BxD.shape[0], k), -1, jnp.int32))
  (s_BxK, i_BxK), _ = jax.lax.scan(step, init, (y_NbxCxD, offsets_Nb))
  return s_BxK, i_BxK


@functools.cache
def _search_block_jit():
  """`_search_block` jitted, built on first use: importing the metrics (every task does) does not load JAX."""
  import jax

  return jax.jit(_search_block, static_argnames=("k",))


def _pad_rows(x_NxD: np.ndarray, multiple: int) -> np.ndarray:
  pad = -len(x_NxD) % multiple
  return np.pad(x_NxD, ((0, pad), (0, 0))) if pad else x_NxD


def knn(x_NxD, y_MxD, k: int, batch: int = 1024, db_batch: int = 65536,
        normalize: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """For each row of x, the k rows of y with the highest cosine similarity.

  Returns (scores_NxK float32, indices_NxK int64), best first. With normalize=False the scores
  are raw inner products (faiss IndexFlatIP). `batch` query rows and `db_batch` database rows
  are compared at a time; the similarity block is batch x db_batch floats.
  """
  x_NxD = np.asarray(x_NxD, dtype=np.float32)
  y_MxD = np.asarray(y_MxD, dtype=np.float32)
  if x_NxD.ndim != 2 or y_MxD.ndim != 2 or x_NxD.shape[1] != y_MxD.shape[1]:
    raise DataError(f"knn: expected [N, D] and [M, D] arrays, got {x_NxD.shape} and {y_MxD.shape}")
  n, m = len(x_NxD), len(y_MxD)
  if not 1 <= k <= m:
    raise ValueError(f"knn: k={k} must be between 1 and the database size {m}")
  if not (np.isfinite(x_NxD).all() and np.isfinite(y_MxD).all()):
    raise DataError("knn: embeddings contain NaN or Inf")
  if normalize:
    x_NxD, y_MxD = l2_normalize(x_NxD), l2_normalize(y_MxD)
  if n == 0:
    return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)

  import jax.numpy as jnp

  block = min(max(db_batch, k), m)
  y_pad = _pad_rows(y_MxD, block)
  y_NbxCxD = jnp.asarray(y_pad.reshape(-1, block, y_pad.shape[1]))
  rows = min(batch, n)
  x_pad = _pad_rows(x_NxD, rows)
  results = [_search_block_jit()(jnp.asarray(x_pad[i:i + rows]), y_NbxCxD, m, k)
             for i in range(0, len(x_pad), rows)]  # dispatched asynchronously, fetched below
  scores_NxK = np.concatenate([np.asarray(s) for s, _ in results])[:n]
  indices_NxK = np.concatenate([np.asarray(i) for _, i in results])[:n].astype(np.int64)
  return scores_NxK, indices_NxK
