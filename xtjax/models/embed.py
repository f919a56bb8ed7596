"""Sentence embeddings from any layer of a pretrained encoder (for BUCC, Tatoeba, `xtjax embed`).

Tokenised once, sorted by length into fixed-size batches padded to length buckets, so a whole
file compiles at most one program per bucket.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from xtjax.errors import XtjaxError
from xtjax.models.encoder import pool

log = logging.getLogger(__name__)


@dataclasses.dataclass
class EmbedStats:
  sentences: int = 0
  truncated: int = 0
  batches: int = 0
  buckets: tuple[int, ...] = ()


def length_bucket(n: int, max_length: int, minimum: int = 16) -> int:
  """Smallest power of two >= n (at least `minimum`), capped at max_length."""
  b = minimum
  while b < n:
    b *= 2
  return min(b, max_length)


def encoder_outputs(model, input_ids, attention_mask, token_type_ids=None, dropout_key=None,
                    first_tokens: int | None = None):
  """The backbone's hidden states for any family (every family's model has `encoder_outputs`).

  `first_tokens=n`: the caller reads only the first n positions of the last layer; encoders that
  can skip the rest (`Encoder(last_layer_queries=n)`) do, T5 returns every position.
  """
  return model.encoder_outputs(input_ids, attention_mask, token_type_ids, dropout_key=dropout_key,
                               first_tokens=first_tokens)


def tokenize(tokenizer, sentences: Sequence[str], max_length: int):
  """Token ids per sentence (truncated to max_length) and how many sentences were truncated."""
  enc = tokenizer(list(sentences), truncation=True, max_length=max_length, return_overflowing_tokens=True,
                  return_attention_mask=False)
  mapping = enc.get("overflow_to_sample_mapping")
  if mapping is None:  # tokenizers that do not report overflow: count by re-tokenising
    ids = enc["input_ids"]
    full = tokenizer(list(sentences), truncation=False, return_attention_mask=False)["input_ids"]
    return ids, sum(len(f) > max_length for f in full)
  ids = [None] * len(sentences)
  for row, sample in zip(enc["input_ids"], mapping):
    if ids[sample] is None:  # the first window is the truncated sentence; the rest is overflow
      ids[sample] = row
  counts = collections.Counter(mapping)
  return ids, sum(1 for c in counts.values() if c > 1)


def embed_sentences(pre, sentences: Sequence[str], layer: int = -1, pooling: str = "mean", batch_size: int = 32,
                    max_length: int = 128, progress: bool = False) -> tuple[np.ndarray, EmbedStats]:
  """[len(sentences), hidden] float32 embeddings from hidden_states[layer] (0: embedding output)."""
  if not sentences:
    raise XtjaxError("no sentences to embed")
  if pre.tokenizer is None:
    raise XtjaxError(f"{pre.source}: the model folder has no tokenizer")
  if pooling not in ("mean", "cls"):
    raise XtjaxError(f"--pooling must be 'mean' or 'cls', got {pooling!r}")
  n_hidden = _num_hidden_states(pre)
  if not -n_hidden <= layer < n_hidden:
    raise XtjaxError(f"--layer {layer} is out of range: the model has hidden states 0..{n_hidden - 1}")
  layer %= n_hidden  # -1 and n_hidden - 1 share one program
  ids, truncated = tokenize(pre.tokenizer, sentences, max_length)
  pad = pre.tokenizer.pad_token_id if pre.tokenizer.pad_token_id is not None else 0
  order = np.argsort([len(x) for x in ids], kind="stable")
  result = np.zeros((len(sentences), 0), np.float32)
  chunks, buckets = [], set()
  batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
  it = batches
  if progress:
    from tqdm import tqdm

    it = tqdm(batches, desc="embed", unit="batch")
  for idx in it:
    L = length_bucket(max(len(ids[i]) for i in idx), max_length)
    buckets.add(L)
    tok = np.full((batch_size, L), pad, np.int32)
    mask = np.zeros((batch_size, L), np.int32)
    for r, i in enumerate(idx):
      tok[r, :len(ids[i])] = ids[i]
      mask[r, :len(ids[i])] = 1
    mask[len(idx):, 0] = 1  # filler rows: one visible token so they stay finite; dropped below
    chunks.append((idx, _embed_batch(pre.graphdef, layer, pooling, pre.params, tok, mask)))
  for idx, vec in chunks:
    vec = np.asarray(vec)
    if result.shape[1] == 0:
      result = np.zeros((len(sentences), vec.shape[1]), np.float32)
    result[idx] = vec[:len(idx)]
  return result, EmbedStats(len(sentences), truncated, len(batches), tuple(sorted(buckets)))


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _embed_batch(graphdef, layer: int, pooling: str, params, input_ids_BxL, mask_BxL):
  """[B, hidden] f32 pooled vectors; one module-level program per (model, layer, pooling, shape), so
  every language of a retrieval evaluation reuses it (a closure per call would recompile each time)."""
  model = nnx.merge(graphdef, params)
  out = encoder_outputs(model, input_ids_BxL, mask_BxL)
  return pool(out.hidden_states[layer], mask_BxL, pooling).astype(jnp.float32)


def _num_hidden_states(pre) -> int:
  return pre.config.num_hidden_states
