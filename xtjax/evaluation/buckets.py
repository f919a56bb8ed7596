"""Shape buckets: a request is padded up to the smallest configured (batch size, length) that fits,
so every request inside a bucket runs the same compiled program."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping

import numpy as np

from xtjax.errors import ConfigError, XtjaxError


@dataclasses.dataclass(frozen=True)
class Buckets:
  """A request of n rows and length l runs as (smallest batch >= n, smallest length >= l).

  More rows than the largest batch size run in chunks of the largest; a length above the largest
  bucket is an error (truncate when featurising).
  """

  batch_sizes: tuple[int, ...] = (1, 8, 32)
  lengths: tuple[int, ...] = (32, 64, 128, 256, 512)

  def __post_init__(self):
    for name in ("batch_sizes", "lengths"):
      vals = tuple(sorted({int(v) for v in getattr(self, name)}))
      if not vals or vals[0] < 1:
        raise ConfigError(f"buckets.{name}: need positive sizes, got {getattr(self, name)}")
      object.__setattr__(self, name, vals)

  def batch(self, n: int) -> int:
    return next((b for b in self.batch_sizes if b >= n), self.batch_sizes[-1])

  def length(self, n: int) -> int:
    for b in self.lengths:
      if b >= n:
        return b
    raise XtjaxError(f"sequence length {n} exceeds the largest length bucket {self.lengths[-1]}")


def effective_length(attention_mask: np.ndarray) -> int:
  """1 + the last position any row attends to (at least 1)."""
  m = np.asarray(attention_mask)
  cols = np.nonzero(m.reshape(-1, m.shape[-1]).any(axis=0))[0]
  return int(cols[-1]) + 1 if cols.size else 1


def pad_batch(arrays: Mapping[str, np.ndarray], rows: int, length: int, pad_id: int) -> dict[str, np.ndarray]:
  """int32 arrays cut or padded to `length` on the last axis and padded to `rows` on the first.

  Padding positions get `pad_id` (input ids) or 0; filler rows attend to their first position
  only, which keeps them finite (their outputs are dropped).
  """
  out = {}
  for k, v in arrays.items():
    v = np.asarray(v)[..., :length]
    n = v.shape[0]
    widths = [(0, rows - n)] + [(0, 0)] * (v.ndim - 2) + [(0, length - v.shape[-1])]
    v = np.pad(v, widths, constant_values=pad_id if k == "input_ids" else 0).astype(np.int32)
    if k == "attention_mask":
      v[n:, ..., 0] = 1
    out[k] = v
  return out


def chunks(arrays: Mapping[str, np.ndarray], buckets: Buckets, length: int,
           pad_id: int) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
  """(real rows, padded batch) for consecutive slices of at most the largest batch bucket."""
  n = next(iter(arrays.values())).shape[0]
  step = buckets.batch_sizes[-1]
  for start in range(0, n, step):
    part = {k: v[start:start + step] for k, v in arrays.items()}
    rows = min(step, n - start)
    yield rows, pad_batch(part, buckets.batch(rows), length, pad_id)
