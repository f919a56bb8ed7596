"""Shared helpers for the task tests: tiny tokenizers built once, upstream-format file writing,
one-hot head outputs, and the location of the shared real data (tests skip when it is absent)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from fixtures import write  # noqa: F401 - re-exported for the task tests

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@functools.lru_cache(maxsize=None)
def unigram():
  from xtjax.tiny import make_unigram_tokenizer

  return make_unigram_tokenizer()


@functools.lru_cache(maxsize=None)
def wordpiece():
  from xtjax.tiny import make_wordpiece_tokenizer

  return make_wordpiece_tokenizer()




def tsv(*rows) -> str:
  return "".join("\t".join(map(str, row)) + "\n" for row in rows)


def one_hot(ids, num_classes: int) -> np.ndarray:
  """Logits whose argmax is `ids` (any shape; -100 rows get class 0)."""
  ids = np.asarray(ids)
  return np.eye(num_classes, dtype=np.float32)[np.where(ids < 0, 0, ids)]
