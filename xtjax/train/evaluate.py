"""Evaluation of one task on one split and language: batched eval steps, post-processing, scores."""

from __future__ import annotations

import numpy as np
import jax
from jax.experimental import multihost_utils

from xtjax.data.batching import eval_batches


def _to_host(x) -> np.ndarray:
  if jax.process_count() > 1:
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(jax.device_get(x))


def head_outputs(eval_fn, params, arrays, batch_size: int, put_batch) -> object:
  """Head outputs for every feature in order (a tuple of arrays for span heads)."""
  chunks = []
  for rows, batch in eval_batches(arrays, batch_size):
    out = eval_fn(params, put_batch(batch))
    out = jax.tree.map(_to_host, out)
    chunks.append(jax.tree.map(lambda x, n=len(rows): x[:n], out))
  if not chunks:
    return None
  if isinstance(chunks[0], tuple):
    return tuple(np.concatenate([c[i] for c in chunks]) for i in range(len(chunks[0])))
  return np.concatenate(chunks)


def evaluate(task, examples, features, eval_fn, params, batch_size: int, settings, language: str, put_batch) -> dict:
  outputs = head_outputs(eval_fn, params, features.arrays, batch_size, put_batch)
  predictions = task.predict(outputs, features, examples, settings)
  scores = task.score(predictions, examples, language)
  return {k: float(v) for k, v in scores.items() if isinstance(v, (int, float, np.floating, np.integer))}
