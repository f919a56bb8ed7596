"""Shared helpers for the task tests: tiny tokenizers built once, upstream-format file writing,
one-hot head outputs, and the location of the shared real data (tests skip when it is absent)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@functools.lru_cache(maxsize=None)
def unigram():
  from xtjax.tiny import make_unigram_tokenizer

  return make_unigram_tokenizer()


@functools.lru_cache(maxsize=None)
def wordpiece():
  from xtjax.tiny import make_wordpiece_tokenizer

  return make_wordpiece_tokenizer()


def write(folder: Path, name: str, content) -> Path:
  """Writes text, a JSON document, or a list of objects as JSON lines (names ending .jsonl)."""
  path = Path(folder) / name
  path.parent.mkdir(parents=True, exist_ok=True)
  if isinstance(content, str):
    text = content
  elif name.endswith(".jsonl"):
    text = "".join(json.dumps(obj, ensure_ascii=False) + "\n" for obj in content)
  else:
    text = json.dumps(content, ensure_ascii=False)
  path.write_text(text, encoding="utf-8")
  return path


def tsv(*rows) -> str:
  return "".join("\t".join(map(str, row)) + "\n" for row in rows)


def one_hot(ids, num_classes: int) -> np.ndarray:
  """Logits whose argmax is `ids` (any shape; -100 rows get class 0)."""
  ids = np.asarray(ids)
  return np.eye(num_classes, dtype=np.float32)[np.where(ids < 0, 0, ids)]
