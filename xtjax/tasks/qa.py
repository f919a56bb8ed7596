"""Extractive QA tasks: SQuAD v1.1 / v2.0 (intermediate tasks), XQuAD, MLQA and TyDiQA-GoldP.

All five read SQuAD-format data: local upstream JSON through `read_squad`, or rows of the
Hugging Face datasets (defaults in `source_table`: `rajpurkar/squad`, `google/xquad` /
`xquad.{lang}`, `google/xtreme` / `MLQA.{lang}.{lang}`, `google-research-datasets/tydiqa` /
`secondary_task`) or TFDS with the schema id / title / context / question / answers {text,
answer_start}. Featurisation is in `qa_features`, answer extraction in `qa_postprocess`. Scores
follow XTREME: SQuAD v1.1 EM/F1 for XQuAD, TyDiQA-GoldP and SQuAD v1.1, MLQA's language-aware
normalisation for MLQA, and the official v2.0 report for SQuAD v2.0.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from xtjax.data.formats.records import QAExample
from xtjax.data.formats.squad import read_squad
from xtjax.data.sources import DataSource, HubDefaults, local_path, source_rows, with_hub_defaults
from xtjax.errors import DataError
from xtjax.metrics.mlqa import mlqa
from xtjax.metrics.squad import squad_v1, squad_v2
from xtjax.tasks.base import Features, FeatureSettings, Task
from xtjax.tasks.qa_features import QA_FEATURES_VERSION, featurize_qa, recoverability
from xtjax.tasks.qa_postprocess import SpanPredictions, join_span_predictions, postprocess
from xtjax.tasks.registry import register
from xtjax.tasks.source_table import hub_defaults


class ExtractiveQATask(Task):
  """A SQuAD-format extractive QA task with the `span` head.

  metric: "squad_v1", "squad_v2" or "mlqa". with_negative: unanswerable questions exist (SQuAD 2.0):
  they are labelled at CLS and predicted "" when the null score wins by more than `null_threshold`.
  """

  head_type = "span"
  main_metric = "f1"

  def __init__(self, name: str, metric: str, hub: HubDefaults, *, with_negative: bool = False,
               null_threshold: float = 0.0):
    self.name = name
    self.metric = metric
    self.hub = hub
    self.with_negative = with_negative
    self.null_threshold = null_threshold

  # ---- data -----------------------------------------------------------------------------------

  def read(self, split: str, language: str, source: DataSource) -> list[QAExample]:
    if source.kind == "local":
      examples = read_squad(local_path(source, split, language, self.name)).examples
      return examples[:source.limit] if source.limit is not None else examples
    source = with_hub_defaults(source, self.hub)
    rows, where = source_rows(source, split, language, self.name)
    if self.hub.id_prefixes:  # TyDi QA GoldP: every language in one split, told apart by id prefix
      rows = _rows_in_language(rows, language, self.hub.id_prefixes)
    return rows_to_examples(rows, where, with_negative=self.with_negative)

  def featurize(self, examples: Sequence[QAExample], tokenizer, settings: FeatureSettings) -> Features:
    return featurize_qa(examples, tokenizer, settings)

  def stats(self, examples: Sequence[QAExample], features: Features) -> dict:
    """Examples, windows, truncated questions and gold-answer recoverability (`xtjax data stats`)."""
    return recoverability(examples, features)

  answer_recoverability = stats

  def fingerprint(self) -> dict:
    """What the feature cache keys on besides the inputs: a change to featurisation bumps the version."""
    return {"task": self.name, "class": type(self).__qualname__, "qa_features": QA_FEATURES_VERSION}

  # ---- evaluation -----------------------------------------------------------------------------

  def predict(self, outputs: Any, features: Features, examples: Sequence[QAExample], settings: FeatureSettings,
              null_threshold: float | None = None) -> SpanPredictions:
    """`outputs`: the span head's (start_logits [N, L], end_logits [N, L]) or a dict with those keys."""
    if isinstance(outputs, Mapping):
      start, end = outputs["start_logits"], outputs["end_logits"]
    else:
      start, end = outputs
    threshold = self.null_threshold if null_threshold is None else null_threshold
    return postprocess(start, end, features, examples, settings, with_negative=self.with_negative,
                       null_threshold=threshold)

  def join_predictions(self, parts: Sequence[SpanPredictions], example_ids, examples: Sequence[QAExample]
                       ) -> SpanPredictions:
    """One SpanPredictions of the whole split, in example order; a question no part answers is an error."""
    return join_span_predictions(self.name, parts, example_ids, examples)

  def score(self, predictions: SpanPredictions | Mapping[str, str], examples: Sequence[QAExample],
            language: str) -> dict[str, float]:
    """Official EM/F1 in percent. For SQuAD 2.0, the official keys (exact, f1, HasAns_*, NoAns_*,
    best_* with SpanPredictions) plus `exact_match` = `exact`, as for the other QA tasks."""
    answers = predictions.answers if isinstance(predictions, SpanPredictions) else predictions
    references = {ex.guid: [text for text, _ in ex.answers] for ex in examples}
    if self.metric == "squad_v2":
      if isinstance(predictions, SpanPredictions):
        out = squad_v2(answers, references, na_probs=predictions.null_odds,
                       na_prob_thresh=predictions.null_threshold)
      else:
        out = squad_v2(answers, references)
      return {"exact_match": out["exact"], **out}
    if self.metric == "mlqa":
      return mlqa(answers, references, language)
    return squad_v1(answers, references)

  def submission_text(self, predictions: SpanPredictions | Mapping[str, str], examples) -> tuple[str, str]:
    """XTREME's QA submission file (`test-{lang}.json`): {question id: answer text}."""
    answers = predictions.answers if isinstance(predictions, SpanPredictions) else predictions
    return "json", json.dumps({ex.guid: answers.get(ex.guid, "") for ex in examples}, ensure_ascii=False)


def rows_to_examples(rows: Iterable[Mapping[str, Any]], where: str, *, with_negative: bool) -> list[QAExample]:
  """Hub / TFDS rows (id, context, question, answers {text: [...], answer_start: [...]}) -> QAExamples.

  Answers are checked against the context as `read_squad` does. A row without answers is
  unanswerable when the task has unanswerable questions (SQuAD 2.0; or `is_impossible` says so),
  otherwise unlabelled.
  """
  examples, seen = [], set()
  for n, row in enumerate(rows):
    try:
      qid, context, question = str(row["id"]), row["context"], row["question"]
      answers = row.get("answers") or {}
      texts, starts = list(answers.get("text", [])), [int(s) for s in answers.get("answer_start", [])]
    except (KeyError, TypeError, ValueError, AttributeError) as e:
      raise DataError(f"{where} row {n}: not a SQuAD-style row ({type(e).__name__}: {e})") from e
    if not isinstance(context, str) or not isinstance(question, str):
      raise DataError(f"{where} row {n} (id {qid}): context and question must be strings")
    if qid in seen:
      raise DataError(f"{where} row {n}: duplicate question id {qid!r}")
    seen.add(qid)
    if len(texts) != len(starts):
      raise DataError(f"{where} row {n} (id {qid}): {len(texts)} answer texts but {len(starts)} answer starts")
    for text, start in zip(texts, starts):
      found = context[start:start + len(text)] if start >= 0 else None
      if found != text:
        raise DataError(f"{where} row {n} (id {qid}): context[{start}:{start + len(text)}] is {found!r}, "
                        f"not the answer text {text!r}")
    impossible = bool(row.get("is_impossible", False)) or (with_negative and not texts)
    if impossible:
      texts, starts = [], []
    examples.append(QAExample(qid, question, context, tuple(zip(texts, starts)), impossible))
  return examples


def _rows_in_language(rows: Iterable[Mapping[str, Any]], language: str, id_prefixes: Mapping[str, str]):
  """Rows whose id starts with `language`'s prefix (and rows with no known prefix)."""
  prefix = id_prefixes.get(language)
  known = set(id_prefixes.values())
  for row in rows:
    head = str(row.get("id", "")).split("-", 1)[0]
    if prefix is None or head not in known or head == prefix:
      yield row


for _task in (
    ExtractiveQATask("squad_v1", "squad_v1", hub_defaults("squad_v1")),
    ExtractiveQATask("squad_v2", "squad_v2", hub_defaults("squad_v2"), with_negative=True),
    ExtractiveQATask("xquad", "squad_v1", hub_defaults("xquad")),
    ExtractiveQATask("mlqa", "mlqa", hub_defaults("mlqa")),
    ExtractiveQATask("tydiqa", "squad_v1", hub_defaults("tydiqa")),
):
  register(_task)
