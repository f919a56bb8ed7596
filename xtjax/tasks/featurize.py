"""Shared featurisation helpers: batched fast-tokenizer calls into fixed-length numpy arrays,
label vocabularies, the default `stats` of `xtjax data stats`, and checked access to hub rows.

Every array is int32 and padded to `max_length`. `token_type_ids` is kept when the tokenizer
returns it (BERT-style pair segments); XLM-R tokenizers return none.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from xtjax.errors import ConfigError, DataError

IGNORE = -100  # label id the losses skip (xtjax.models.heads.IGNORE; tasks do not import models)
CHUNK = 2048  # examples per tokenizer call: bounds the Python lists a call returns


def require_fast(tokenizer, task: str) -> None:
  if not getattr(tokenizer, "is_fast", False):
    raise ConfigError(f"task {task!r}: needs a fast (Rust `tokenizers`) tokenizer, got {type(tokenizer).__name__}")
  if tokenizer.pad_token_id is None:
    raise ConfigError(f"task {task!r}: the tokenizer has no padding token")


def encode(tokenizer, texts_a: Sequence, texts_b: Sequence | None, max_length: int, *,
           split_into_words: bool = False, keep_encodings: bool = False):
  """Tokenises (pairs of) texts, truncating the longer side first, padded to `max_length`.

  Returns (arrays, truncated_N bool, encodings or None). `encodings` are the fast tokenizer's
  per-row `Encoding`s (for `word_ids`), kept only when asked.
  """
  n = len(texts_a)
  ids = np.zeros((n, max_length), np.int32)
  mask = np.zeros((n, max_length), np.int32)
  types = None
  truncated = np.zeros(n, bool)
  encodings = [] if keep_encodings else None
  for start in range(0, n, CHUNK):
    stop = min(start + CHUNK, n)
    a = list(texts_a[start:stop])
    b = list(texts_b[start:stop]) if texts_b is not None else None
    enc = tokenizer(a, b, truncation="longest_first" if b is not None else True, max_length=max_length,
                    padding="max_length", is_split_into_words=split_into_words)
    ids[start:stop] = enc["input_ids"]
    mask[start:stop] = enc["attention_mask"]
    if "token_type_ids" in enc:
      if types is None:
        types = np.zeros((n, max_length), np.int32)
      types[start:stop] = enc["token_type_ids"]
    # A fast tokenizer keeps what truncation cut off in `overflowing`.
    truncated[start:stop] = [bool(e.overflowing) for e in enc.encodings]
    if keep_encodings:
      encodings.extend(enc.encodings)
  arrays = {"input_ids": ids, "attention_mask": mask}
  if types is not None:
    arrays["token_type_ids"] = types
  return arrays, truncated, encodings


def label_ids(labels: Sequence[str | None], vocabulary: Sequence[str], task: str,
              guids: Sequence[str]) -> np.ndarray:
  """Label strings -> ids in `vocabulary`; None (unlabelled) -> IGNORE; anything else is a DataError."""
  index = {label: i for i, label in enumerate(vocabulary)}
  out = np.full(len(labels), IGNORE, np.int32)
  for i, label in enumerate(labels):
    if label is None:
      continue
    if label not in index:
      raise DataError(f"task {task!r}: example {guids[i]!r} has label {label!r}, not one of {list(vocabulary)}")
    out[i] = index[label]
  return out


def scatter_by_example(values: Sequence, features, num_examples: int) -> list:
  """One value per example from one value per feature (features map 1:1 to examples here)."""
  out: list = [None] * num_examples
  for value, example in zip(values, np.asarray(features.example_index)):
    out[int(example)] = value
  return out


def basic_stats(examples: Sequence, features, labels: Sequence | None = None) -> dict[str, Any]:
  """Examples, features, truncation rate and (when given) the label distribution."""
  n_feat = len(features)
  truncated = int(features.stats.get("truncated", 0))
  out: dict[str, Any] = {"examples": len(examples), "features": n_feat, "truncated": truncated,
                         "truncation_rate": truncated / n_feat if n_feat else 0.0}
  if labels is not None:
    counts = collections.Counter(label for label in labels if label is not None)
    out["label_distribution"] = dict(sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0]))))
  for key, value in features.stats.items():
    out.setdefault(key, value)
  return out


def truncation_report(num_examples: int, features, padding: Mapping[str, int] | None = None) -> dict[str, Any]:
  """How often featurisation cut something, read from `features.stats` alone (no per-task work, so it
  is cheap at every training start): examples, features, every truncation count (inputs; targets of
  text-to-text; questions of QA; choices of multiple choice), and the input and target rates per feature.
  `padding`: token and slot counts (`xtjax.data.packing.padding_counts`), reported with padding rates."""
  counts = {"examples": num_examples, "features": len(features)}
  counts.update({k: int(v) for k, v in features.stats.items() if k.startswith("truncated")})
  counts.update({k: int(v) for k, v in (padding or {}).items()})
  return _with_rates(counts)


def merge_truncation_reports(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
  """One report for disjoint shares of a split (each process's): counts summed, rates recomputed."""
  keys = dict.fromkeys(k for r in reports for k in r if not k.endswith("_rate"))
  return _with_rates({k: sum(int(r.get(k, 0)) for r in reports) for k in keys})


def _with_rates(counts: dict[str, int]) -> dict[str, Any]:
  out: dict[str, Any] = dict(counts)
  n = out["features"]
  out["truncation_rate"] = out.get("truncated", 0) / n if n else 0.0
  if "truncated_targets" in out:
    out["target_truncation_rate"] = out["truncated_targets"] / n if n else 0.0
  for rows in ("", "packed_"):  # padding of text-to-text rows, unpacked and packed (`xtjax.data.packing`)
    for side in ("input", "target"):
      slots = out.get(f"{rows}{side}_slots")
      if slots is not None:
        out[f"{rows}{side}_padding_rate"] = 1.0 - out[f"{rows}{side}_tokens"] / slots if slots else 0.0
  return out


def field(row: Mapping, keys: str | Sequence[str], where: str, index: int, kind: type | tuple = str,
          optional: bool = False):
  """row[key] for the first of `keys` present, type-checked; errors name the dataset, row and field."""
  keys = (keys,) if isinstance(keys, str) else tuple(keys)
  kinds = kind if isinstance(kind, tuple) else (kind,)
  for key in keys:
    if key in row and row[key] is not None:
      value = row[key]
      if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise DataError(f"{where} row {index} [{key}]: expected {names}, "
                        f"got {type(value).__name__} {str(value)[:60]!r}")
      return value
  if optional:
    return None
  raise DataError(f"{where} row {index} [{'/'.join(keys)}]: missing (row has {sorted(row)})")


def row_guid(row: Mapping, keys: Sequence[str], index: int) -> str:
  """The first non-empty id field of a hub row, else the row number."""
  return next((str(row[k]) for k in keys if row.get(k) not in (None, "")), str(index))


def limited(examples: list, source) -> list:
  """The first `source.limit` examples (smoke runs); hub and TFDS rows are limited while read."""
  limit = getattr(source, "limit", None)
  return examples[:limit] if limit is not None else examples
