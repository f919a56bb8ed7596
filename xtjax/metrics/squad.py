"""SQuAD v1.1 and v2.0 exact match and F1, numerically identical to the official scripts.

v1.1 is what XTREME uses for XQuAD and TyDiQA-GoldP (`third_party/evaluate_squad.py` is the
official `evaluate-v1.1.py`); v2.0 follows `evaluate-v2.0.py`, including its no-answer threshold
search. Scores are percentages.
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Mapping, Sequence

from xtjax.errors import DataError

_PUNCT = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(s: str) -> str:
  """Lower-cases, drops ASCII punctuation and English articles, collapses whitespace."""
  s = s.lower()
  s = "".join(ch for ch in s if ch not in _PUNCT)
  s = _ARTICLES.sub(" ", s)
  return " ".join(s.split())


def exact_match(prediction: str, ground_truth: str) -> bool:
  return normalize_answer(prediction) == normalize_answer(ground_truth)


def f1(prediction: str, ground_truth: str) -> float:
  """Token-level F1 of the v1.1 script (0 when nothing overlaps, even if both are empty)."""
  return token_f1(normalize_answer(prediction).split(), normalize_answer(ground_truth).split())


def token_f1(pred_tokens: Sequence[str], gold_tokens: Sequence[str]) -> float:
  """F1 of the multiset overlap of two token lists (0 when nothing overlaps)."""
  num_same = sum((collections.Counter(pred_tokens) & collections.Counter(gold_tokens)).values())
  if num_same == 0:
    return 0.0
  precision = num_same / len(pred_tokens)
  recall = num_same / len(gold_tokens)
  return 2 * precision * recall / (precision + recall)


def _golds(qid, answers: Sequence[str]) -> Sequence[str]:
  if isinstance(answers, str) or not answers:
    raise DataError(f"question {qid!r}: references need a non-empty list of answer strings")
  return answers


def squad_v1(predictions: Mapping[str, str],
             references: Mapping[str, Sequence[str]]) -> dict[str, float]:
  """{"exact_match", "f1"} in percent; each question takes the max over its gold answers.

  Every question in `references` counts; one without a prediction scores 0 (as in the official
  script). Predictions for unknown ids are ignored.
  """
  if not references:
    raise DataError("squad_v1: no reference questions")
  em_sum = f1_sum = 0.0
  for qid, answers in references.items():
    golds = _golds(qid, answers)
    if qid not in predictions:
      continue
    pred = predictions[qid]
    em_sum += max(exact_match(pred, g) for g in golds)
    f1_sum += max(f1(pred, g) for g in golds)
  total = len(references)
  return {"exact_match": 100.0 * em_sum / total, "f1": 100.0 * f1_sum / total}


# ---- SQuAD v2.0 -------------------------------------------------------------------------------


def _v2_tokens(s: str) -> list[str]:
  return normalize_answer(s).split() if s else []


def exact_v2(prediction: str, ground_truth: str) -> int:
  return int(normalize_answer(ground_truth) == normalize_answer(prediction))


def f1_v2(prediction: str, ground_truth: str) -> float:
  """v2.0 F1: like v1.1, except that an empty gold or prediction scores 1 iff both are empty."""
  gold_tokens = _v2_tokens(ground_truth)
  pred_tokens = _v2_tokens(prediction)
  if not gold_tokens or not pred_tokens:
    return float(gold_tokens == pred_tokens)
  return token_f1(pred_tokens, gold_tokens)


def _has_answer(answers: Sequence[str]) -> bool:
  # The official script reads `bool(qa["answers"])`; here an unanswerable question is `[]` or
  # `[""]`.
  if isinstance(answers, str):
    raise DataError("squad_v2: references must map each id to a list of answer strings")
  return any(a != "" for a in answers)


def _eval_dict(exact: Mapping[str, float], f1s: Mapping[str, float],
               qids: Sequence[str] | None = None) -> dict[str, float]:
  if qids is None:
    total = len(exact)
    return {"exact": 100.0 * sum(exact.values()) / total,
            "f1": 100.0 * sum(f1s.values()) / total, "total": total}
  total = len(qids)
  return {"exact": 100.0 * sum(exact[q] for q in qids) / total,
          "f1": 100.0 * sum(f1s[q] for q in qids) / total, "total": total}


def find_best_thresh(predictions: Mapping[str, str], scores: Mapping[str, float],
                     na_probs: Mapping[str, float],
                     has_ans: Mapping[str, bool]) -> tuple[float, float]:
  """(best score in percent, na_prob threshold) as the official v2.0 `find_best_thresh`.

  Walks questions by increasing no-answer probability, switching each from "no answer" to its
  predicted span; ties in `na_probs` keep their insertion order (a stable sort, as upstream).
  """
  cur_score = best_score = sum(1 for v in has_ans.values() if not v)
  best_thresh = 0.0
  for qid in sorted(na_probs, key=lambda q: na_probs[q]):
    if qid not in scores:
      continue
    if has_ans[qid]:
      diff = scores[qid]
    else:
      diff = -1 if predictions[qid] else 0
    cur_score += diff
    if cur_score > best_score:
      best_score = cur_score
      best_thresh = na_probs[qid]
  return 100.0 * best_score / len(scores), best_thresh


def squad_v2(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]],
             na_probs: Mapping[str, float] | None = None,
             na_prob_thresh: float = 1.0) -> dict[str, float]:
  """The official v2.0 report: exact/f1/total, HasAns_* and NoAns_*, and with `na_probs`
  also best_exact, best_exact_thresh, best_f1, best_f1_thresh (keys as upstream).

  An unanswerable question has `[]` or `[""]` as references; the empty prediction is its only
  correct answer. A question whose `na_probs` value exceeds `na_prob_thresh` is scored as if
  the model had answered "no answer". Every reference question needs a prediction (the
  official script fails without one).
  """
  if not references:
    raise DataError("squad_v2: no reference questions")
  missing = [q for q in references if q not in predictions]
  if missing:
    raise DataError(f"squad_v2: {len(missing)} questions have no prediction, e.g. {missing[0]!r}")
  has_ans = {qid: _has_answer(answers) for qid, answers in references.items()}
  exact_raw, f1_raw = {}, {}
  for qid, answers in references.items():
    golds = [a for a in answers if normalize_answer(a)] or [""]
    pred = predictions[qid]
    exact_raw[qid] = max(exact_v2(pred, g) for g in golds)
    f1_raw[qid] = max(f1_v2(pred, g) for g in golds)

  probs = na_probs if na_probs is not None else {qid: 0.0 for qid in predictions}
  missing = [q for q in references if q not in probs]
  if missing:
    raise DataError(f"squad_v2: {len(missing)} questions have no na_prob, e.g. {missing[0]!r}")

  def thresholded(raw):
    return {qid: float(not has_ans[qid]) if probs[qid] > na_prob_thresh else s
            for qid, s in raw.items()}

  exact_th, f1_th = thresholded(exact_raw), thresholded(f1_raw)
  out = _eval_dict(exact_th, f1_th)
  for prefix, qids in (("HasAns", [q for q, v in has_ans.items() if v]),
                       ("NoAns", [q for q, v in has_ans.items() if not v])):
    if qids:
      out.update({f"{prefix}_{k}": v for k, v in _eval_dict(exact_th, f1_th, qids).items()})
  if na_probs is not None:
    out["best_exact"], out["best_exact_thresh"] = find_best_thresh(
        predictions, exact_raw, na_probs, has_ans)
    out["best_f1"], out["best_f1_thresh"] = find_best_thresh(
        predictions, f1_raw, na_probs, has_ans)
  return out
