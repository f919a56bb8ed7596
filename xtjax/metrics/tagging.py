"""Span-level precision/recall/F1 for PAN-X (NER) and UD-POS, via seqeval as XTREME does.

XTREME scores UD-POS with the same seqeval call as NER, so each bare POS tag is read as an IOB
tag whose first letter is the prefix: 'NOUN' is tag 'N' of type 'OUN'. Consecutive tokens with
the same tag merge into one span ('NOUN NOUN' is one entity) and tags starting with 'S' (SCONJ,
SYM) are single-token spans, so the number is close to, not equal to, token accuracy. With
seqeval >= 1.0 CCONJ and SCONJ share the type 'CONJ' (seqeval 0.0.12, current when XTREME was
published, kept the whole tag as the type), so a CCONJ/SCONJ confusion can count as correct.
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


def tagging_scores(predictions: Sequence[Sequence[str]],
                   labels: Sequence[Sequence[str]]) -> dict[str, float]:
  """{"precision", "recall", "f1"} in percent: seqeval's default (conlleval-compatible) micro
  scores over lists of per-sentence tag lists.
  """
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
