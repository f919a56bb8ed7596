"""Span-level precision/recall/F1 for PAN-X (NER) and UD-POS, via seqeval as XTREME does.

XTREME scores UD-POS with the same seqeval call as NER, so each bare POS tag is read as an IOB
tag whose first letter is the prefix: 'NOUN' is tag 'N' of type 'OUN'. Consecutive tokens with
the same tag merge into one span ('NOUN NOUN' is one entity) and tags starting with 'S' (SCONJ,
SYM) are single-token spans, so the number is close to, not equal to, token accuracy. With
seqeval >= 1.0 CCONJ and SCONJ share the type 'CONJ' (seqeval 0.0.12, current when XTREME was
published, kept the whole tag as the type), so a CCONJ/SCONJ confusion can count as correct.

`tagging_scores(..., scheme="xtreme")` (the default) therefore reproduces seqeval 0.0.12's span
extraction (type = the whole tag after any 'B-'/'I-' prefix), which is what XTREME's published
numbers used; `scheme="seqeval"` calls the installed seqeval as is. On IOB2 NER tags (PAN-X) the
two agree.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from xtjax.errors import DataError


def _check(predictions: Sequence[Sequence[str]], labels: Sequence[Sequence[str]]) -> None:
  if len(predictions) != len(labels):
    raise DataError(f"tagging: {len(predictions)} predicted sentences for {len(labels)} gold")
  for i, (p, g) in enumerate(zip(predictions, labels)):
    if len(p) != len(g):
      raise DataError(f"tagging: sentence {i} has {len(p)} predicted tags for {len(g)} gold tags")


def _chunk_edges(prev_tag, tag, prev_type, type_):
  end = (prev_tag in ("E", "S") or (prev_tag in ("B", "I") and tag in ("B", "S", "O"))
         or (prev_tag not in ("O", ".") and prev_type != type_))
  start = (tag in ("B", "S") or (prev_tag == "E" and tag in ("E", "I")) or (prev_tag == "S" and tag in ("E", "I"))
           or (prev_tag == "O" and tag in ("E", "I")) or (tag not in ("O", ".") and prev_type != type_))
  return end, start


def entities_0012(seq: Sequence[Sequence[str]]) -> set[tuple[str, int, int]]:
  """Spans (type, start, end) as seqeval 0.0.12's `get_entities` finds them (sentences joined
  with 'O'): the prefix is the first character, the type is the text after the last '-'."""
  flat = [t for sent in seq for t in list(sent) + ["O"]]
  chunks, prev_tag, prev_type, begin = [], "O", "", 0
  for i, chunk in enumerate(flat + ["O"]):
    tag, type_ = chunk[0], chunk.split("-")[-1]
    end, start = _chunk_edges(prev_tag, tag, prev_type, type_)
    if end:
      chunks.append((prev_type, begin, i - 1))
    if start:
      begin = i
    prev_tag, prev_type = tag, type_
  return set(chunks)


def tagging_scores(predictions: Sequence[Sequence[str]], labels: Sequence[Sequence[str]],
                   scheme: str = "xtreme") -> dict[str, float]:
  """{"precision", "recall", "f1"} in percent: micro span scores over lists of per-sentence tag
  lists, with XTREME's seqeval 0.0.12 spans (`scheme="xtreme"`) or the installed seqeval's."""
  if scheme == "xtreme":
    _check(predictions, labels)
    true, pred = entities_0012(labels), entities_0012(predictions)
    correct = len(true & pred)
    p = correct / len(pred) if pred else 0.0
    r = correct / len(true) if true else 0.0
    f = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return {"precision": 100.0 * p, "recall": 100.0 * r, "f1": 100.0 * f}
  if scheme != "seqeval":
    raise ValueError(f"unknown tagging scheme {scheme!r}; expected 'xtreme' or 'seqeval'")
  # seqeval pulls in scikit-learn (over a second to import), so only when tagging is scored.
  from seqeval.metrics import f1_score, precision_score, recall_score

  _check(predictions, labels)
  y_true = [list(s) for s in labels]
  y_pred = [list(s) for s in predictions]
  with warnings.catch_warnings():
    # POS tags are not IOB tags; seqeval warns once per tag, which says nothing new.
    warnings.filterwarnings("ignore", message=".*seems not to be NE tag")
    return {
        "precision": 100.0 * float(precision_score(y_true, y_pred)),
        "recall": 100.0 * float(recall_score(y_true, y_pred)),
        "f1": 100.0 * float(f1_score(y_true, y_pred)),
    }
