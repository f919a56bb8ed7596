"""Extractive-QA post-processing: start/end logits of every window -> one answer per question.

As Hugging Face `run_qa.py`'s `postprocess_qa_predictions` (and XTREME's SQuAD post-processing):
per window, the top `n_best` start and top `n_best` end positions (over all positions) are paired;
a pair is kept when both tokens lie in the context, end >= start and the span is at most
`max_answer_length` tokens. A span scores start_logit + end_logit; the text is cut from the
original context through the character offsets. With unanswerable questions (SQuAD 2.0) the null
score is the smallest CLS start+end over the question's windows, and the answer is "" when
null score - best span score > `null_threshold`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from xtjax.data.formats.records import QAExample
from xtjax.errors import XtjaxError
from xtjax.tasks.base import Features, FeatureSettings


@dataclasses.dataclass
class SpanPredictions:
  """One answer per question id, with what the official SQuAD 2.0 scoring also needs.

  null_odds: null score - best span score per question (+inf without any valid span). Higher means
    "more likely unanswerable"; it is the `na_probs` input of the official threshold search, whose
    best threshold is in these units and can be used as `null_threshold`.
  nbest: the top spans per question, best first: {"text", "score", "start", "end"} (characters).
  """

  answers: dict[str, str]
  null_odds: dict[str, float]
  nbest: dict[str, list[dict]]
  null_threshold: float = 0.0
  with_negative: bool = False


def _top(logits_L: np.ndarray, n: int) -> np.ndarray:
  # Stable sort on the negated logits: equal logits keep position order (deterministic ties).
  return np.argsort(-logits_L, kind="stable")[:n]


def _window_spans(start_L, end_L, offsets_Lx2, settings: FeatureSettings):
  """(score, start token, end token) arrays of the valid candidate spans of one window."""
  s_idx, e_idx = _top(start_L, settings.n_best), _top(end_L, settings.n_best)
  S, E = np.meshgrid(s_idx, e_idx, indexing="ij")
  S, E = S.reshape(-1), E.reshape(-1)
  ok = ((offsets_Lx2[S, 0] >= 0) & (offsets_Lx2[E, 0] >= 0) & (E >= S)
        & (E - S + 1 <= settings.max_answer_length) & (offsets_Lx2[E, 1] > offsets_Lx2[S, 0]))
  S, E = S[ok], E[ok]
  return start_L[S] + end_L[E], S, E


def postprocess(start_logits_NxL: np.ndarray, end_logits_NxL: np.ndarray, features: Features,
                examples: Sequence[QAExample], settings: FeatureSettings, *, with_negative: bool = False,
                null_threshold: float = 0.0) -> SpanPredictions:
  """Best answer per example over all of its windows; ties go to the earlier window, start, end."""
  start_NxL = np.asarray(start_logits_NxL, np.float64)
  end_NxL = np.asarray(end_logits_NxL, np.float64)
  if start_NxL.shape != end_NxL.shape or start_NxL.shape[0] != len(features):
    raise ValueError(f"span outputs {start_NxL.shape} / {end_NxL.shape} do not match {len(features)} features")
  offsets, cls = features.extra["offsets"], features.extra["cls_index"]
  windows: list[list[int]] = [[] for _ in examples]
  for i, j in enumerate(features.example_index):
    if not 0 <= j < len(examples):
      raise ValueError(f"feature {i} belongs to example {j}, but only {len(examples)} examples were given")
    windows[int(j)].append(i)

  answers, null_odds, nbest = {}, {}, {}
  for ex, rows in zip(examples, windows):
    scores, feats, starts, ends = [], [], [], []
    null = np.inf
    for i in rows:
      null = min(null, start_NxL[i, cls[i]] + end_NxL[i, cls[i]])
      score, S, E = _window_spans(start_NxL[i], end_NxL[i], offsets[i], settings)
      scores.append(score)
      feats.append(np.full(S.shape, i))
      starts.append(S)
      ends.append(E)
    score, feat, S, E = (np.concatenate(x) if x else np.zeros(0) for x in (scores, feats, starts, ends))
    order = np.lexsort((E, S, feat, -score))[:settings.n_best]
    best = []
    for k in order:
      i, s, e = int(feat[k]), int(S[k]), int(E[k])
      c0, c1 = int(offsets[i, s, 0]), int(offsets[i, e, 1])
      best.append({"text": ex.context[c0:c1], "score": float(score[k]), "start": c0, "end": c1})
    odds = float(null - best[0]["score"]) if best else np.inf
    null_odds[ex.guid] = odds
    nbest[ex.guid] = best
    answers[ex.guid] = best[0]["text"] if best and not (with_negative and odds > null_threshold) else ""
  return SpanPredictions(answers, null_odds, nbest, null_threshold, with_negative)


def join_span_predictions(task: str, parts: Sequence[SpanPredictions], example_ids: Sequence[np.ndarray],
                          examples: Sequence[QAExample]) -> SpanPredictions:
  """`postprocess`'s results on parts of a split (part k: examples `example_ids[k]`) as one, in example
  order, as `postprocess` on the whole split gives them; a question its part does not answer is an error."""
  answers, null_odds, nbest = {}, {}, {}
  for k, (part, ids) in enumerate(zip(parts, example_ids)):
    for i in np.asarray(ids, np.int64):
      guid = examples[int(i)].guid
      if guid not in part.answers:
        raise XtjaxError(f"task {task!r}: part {k} has no answer for question {guid!r}")
      answers[guid], null_odds[guid], nbest[guid] = part.answers[guid], part.null_odds[guid], part.nbest[guid]
  missing = [ex.guid for ex in examples if ex.guid not in answers]
  if missing:
    raise XtjaxError(f"task {task!r}: no answer for {len(missing)} of {len(examples)} questions (the first: {missing[:5]})")
  order = [ex.guid for ex in examples]
  first = parts[0]
  return SpanPredictions({g: answers[g] for g in order}, {g: null_odds[g] for g in order},
                         {g: nbest[g] for g in order}, first.null_threshold, first.with_negative)
