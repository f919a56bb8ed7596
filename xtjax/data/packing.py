"""Packing of text-to-text training rows, T5X-style: several examples' inputs and targets share one row.

Each packed row holds whole examples (never split) as segments 1..n, padding 0, with positions that
restart at 0 in every segment, for inputs and targets alike (`inputs_segment_ids`, `inputs_positions`,
`targets_segment_ids`, `targets_positions`, as T5X's `trim_and_pack`). The model keeps attention and
relative positions inside a segment (`xtjax.models.t5.Segments`).

Packing is greedy first-fit in example order over a fixed window of open rows, per example shard
(`xtjax.data.shards`): each packed row lives in the shard of its examples and takes the id of its
first one, so the packed table is a pure function of the featurised one, the same on any number of
processes, and batching, shuffling and the resume position (`DataPosition`) work on packed rows as on
plain ones. The same examples share a row in every epoch (T5X repacks after each shuffle); the
epoch's shuffle still reorders the rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from xtjax.errors import ConfigError, DataError

IGNORE = -100
KEYS = ("input_ids", "attention_mask", "labels")
SEGMENT_KEYS = ("inputs_segment_ids", "inputs_positions", "targets_segment_ids", "targets_positions")
WINDOW = 64  # open rows an example may go into; the oldest closes when a new one would exceed it


def check_packable(task: str, head_type: str, model_kind: str) -> None:
  """Packing is for text-to-text tasks on an encoder-decoder (the T5 masks); anything else is a ConfigError."""
  if head_type != "text_to_text":
    raise ConfigError(f"features.pack: task {task!r} has a {head_type} head; packing applies to text_to_text tasks")
  if model_kind != "seq2seq":
    raise ConfigError(f"features.pack: task {task!r} runs on a {model_kind} model; packed rows need an "
                      f"encoder-decoder (T5 / mT5 / umT5)")


def _lengths(valid_NxL: np.ndarray, what: str) -> np.ndarray:
  """Tokens per row of a right-padded table (valid a prefix), or a DataError naming the row."""
  n = valid_NxL.sum(1)
  prefix = np.arange(valid_NxL.shape[1])[None, :] < n[:, None]
  bad = np.flatnonzero((prefix != valid_NxL).any(1))
  if len(bad):
    raise DataError(f"packing: {what} of feature row {int(bad[0])} is not right-padded")
  return n.astype(np.int64)


def first_fit(in_len: np.ndarray, t_len: np.ndarray, input_length: int, target_length: int,
              window: int = WINDOW) -> np.ndarray:
  """Packed row of each example (rows numbered in the order they open): the first open row with room for
  both its inputs and targets, else a new row; at most `window` rows are open."""
  rows = np.empty(len(in_len), np.int64)
  in_free = np.zeros(window, np.int64)  # slot -> free input tokens of the row it holds (0: none)
  t_free = np.zeros(window, np.int64)
  row_of_slot = np.full(window, -1, np.int64)
  opened = 0
  for e, (a, b) in enumerate(zip(in_len.tolist(), t_len.tolist())):
    fits = np.flatnonzero((in_free >= a) & (t_free >= b) & (row_of_slot >= 0))
    if len(fits):  # first-fit: the oldest open row with room
      slot = fits[np.argmin(row_of_slot[fits])]
    else:  # a new row, in a free slot or in place of the oldest open row
      free = np.flatnonzero(row_of_slot < 0)
      slot = free[0] if len(free) else int(np.argmin(row_of_slot))
      row_of_slot[slot], in_free[slot], t_free[slot] = opened, input_length, target_length
      opened += 1
    rows[e] = row_of_slot[slot]
    in_free[slot] -= a
    t_free[slot] -= b
  return rows


def _segments(rows: np.ndarray, lengths: np.ndarray, num_rows: int) -> tuple[np.ndarray, np.ndarray]:
  """(segment number 1.. of each example in its row, its first token's offset)."""
  seg = np.zeros(len(rows), np.int64)
  offset = np.zeros(len(rows), np.int64)
  count = np.zeros(num_rows, np.int64)
  used = np.zeros(num_rows, np.int64)
  for e, r in enumerate(rows.tolist()):
    count[r] += 1
    seg[e], offset[e] = count[r], used[r]
    used[r] += lengths[e]
  return seg, offset


def _fill(tokens_NxL: np.ndarray, lengths, rows, seg, offset, num_rows: int, pad: int):
  """(tokens, segment ids, positions) [num_rows, L] of the packed rows."""
  L = tokens_NxL.shape[1]
  out = np.full((num_rows, L), pad, tokens_NxL.dtype)
  seg_ids = np.zeros((num_rows, L), np.int32)
  pos = np.zeros((num_rows, L), np.int32)
  for e in range(len(rows)):
    r, o, n = int(rows[e]), int(offset[e]), int(lengths[e])
    out[r, o:o + n] = tokens_NxL[e, :n]
    seg_ids[r, o:o + n] = seg[e]
    pos[r, o:o + n] = np.arange(n)
  return out, seg_ids, pos


def pack_rows(arrays: Mapping[str, np.ndarray], pad_id: int, window: int = WINDOW) -> tuple[dict[str, np.ndarray],
                                                                                             np.ndarray]:
  """(packed arrays, the first example (row index into `arrays`) of each packed row) for text-to-text
  rows `input_ids`/`attention_mask` [N, L] and `labels` [N, T] (IGNORE-padded), packed in row order."""
  extra = sorted(set(arrays) - set(KEYS))
  if extra or set(KEYS) - set(arrays):
    raise DataError(f"packing takes text-to-text features {list(KEYS)}, got {sorted(arrays)}")
  in_len = _lengths(np.asarray(arrays["attention_mask"]) > 0, "attention_mask")
  t_len = _lengths(np.asarray(arrays["labels"]) != IGNORE, "labels")
  L, T = arrays["input_ids"].shape[1], arrays["labels"].shape[1]
  rows = first_fit(in_len, t_len, L, T, window)
  num_rows = int(rows.max()) + 1 if len(rows) else 0
  out = {}
  seg, offset = _segments(rows, in_len, num_rows)
  out["input_ids"], out["inputs_segment_ids"], out["inputs_positions"] = _fill(
      np.asarray(arrays["input_ids"]), in_len, rows, seg, offset, num_rows, pad_id)
  out["attention_mask"] = (out["inputs_segment_ids"] > 0).astype(np.asarray(arrays["attention_mask"]).dtype)
  seg, offset = _segments(rows, t_len, num_rows)
  out["labels"], out["targets_segment_ids"], out["targets_positions"] = _fill(
      np.asarray(arrays["labels"]), t_len, rows, seg, offset, num_rows, IGNORE)
  first = np.full(num_rows, len(rows), np.int64)
  np.minimum.at(first, rows, np.arange(len(rows)))
  return out, first


def padding_counts(arrays: Mapping[str, np.ndarray], prefix: str = "") -> dict[str, int]:
  """Real and total input and target token slots of a text-to-text table (the truncation report's
  padding rates: `xtjax.tasks.featurize.truncation_report`)."""
  mask, labels = np.asarray(arrays["attention_mask"]), np.asarray(arrays["labels"])
  return {f"{prefix}input_tokens": int((mask > 0).sum()), f"{prefix}input_slots": int(mask.size),
          f"{prefix}target_tokens": int((labels != IGNORE).sum()), f"{prefix}target_slots": int(labels.size)}


def pack_shard(shard, pad_id: int, window: int = WINDOW):
  """(a `FeatureShard` of packed rows, padding counts before and after): packed per example shard."""
  from xtjax.tasks.base import Features

  features, S = shard.features, shard.spec.num_shards
  ids = np.asarray(features.example_index, np.int64)
  parts, firsts = [], []
  for s in shard.spec.owned:  # rows of a shard in example order, as `TaskStream` orders them
    rows = np.flatnonzero(ids % S == s)
    packed, first = pack_rows({k: np.asarray(features.arrays[k])[rows] for k in KEYS}, pad_id, window)
    parts.append(packed)
    firsts.append(ids[rows][first])
  arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
  counts = {**padding_counts(features.arrays), **padding_counts(arrays, "packed_")}
  counts["packed_rows"] = int(len(arrays["input_ids"]))
  packed = Features(arrays, np.concatenate(firsts), stats=dict(features.stats))
  return dataclasses.replace(shard, features=packed), counts
