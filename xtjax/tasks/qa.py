"""Extractive QA tasks: SQuAD v1.1 / v2.0 (intermediate tasks), XQuAD, MLQA and TyDiQA-GoldP.

All five read SQuAD-format data: local upstream JSON through `read_squad`, or rows of the
Hugging Face datasets (defaults in each task's source row: `rajpurkar/squad`, `google/xquad` /
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
from xtjax.tasks import t2t_forms as forms
from xtjax.tasks.card import BenchmarkEntry, TaskCard, langs
from xtjax.tasks.registry import register
from xtjax.tasks.source_table import ALL, DEV, EN, EVAL_ONLY, TV, XTREME_SHA, SourceRow
from xtjax.tasks.submission_formats import MLQA, SQUAD, Submission


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


# ---- registrations: each task with its card ------------------------------------------------------

# google-research/xtreme evaluate.py TASK2LANGS.
XQUAD_LANGS = langs("en,es,de,el,ru,tr,ar,vi,th,zh,hi")
MLQA_LANGS = langs("en,es,de,ar,hi,vi,zh")
TYDIQA_LANGS = langs("en,ar,bn,fi,id,ko,ru,sw,te")
TYDIQA_ID_PREFIX = {"en": "english", "ar": "arabic", "bn": "bengali", "fi": "finnish", "id": "indonesian",
                    "ko": "korean", "ru": "russian", "sw": "swahili", "te": "telugu"}
QA_METRICS = ("exact_match", "f1")  # XTREME's QA score: their mean

SQUAD_V1_SOURCE = SourceRow(
    "squad_v1", EN, "rajpurkar/squad", None, splits=TV, split_names=EVAL_ONLY,
    tfds_name="squad/v1.1", tfds_split_names=DEV,
    url="https://rajpurkar.github.io/SQuAD-explorer/dataset/{train,dev}-v1.1.json",
    license="CC BY-SA 4.0",
    verified="hub viewer rajpurkar/squad plain_text: train 87.6k / validation 10.6k",
    target="squad/{split}-v1.1.json", writer="squad")
SQUAD_V2_SOURCE = SourceRow(
    "squad_v2", EN, "rajpurkar/squad_v2", None, splits=TV, split_names=EVAL_ONLY,
    tfds_name="squad/v2.0", tfds_split_names=DEV,
    url="https://rajpurkar.github.io/SQuAD-explorer/dataset/{train,dev}-v2.0.json",
    license="CC BY-SA 4.0", verified="not verified here (assumed like rajpurkar/squad)",
    target="squad/{split}-v2.0.json", writer="squad")
XQUAD_SOURCE = SourceRow(
    "xquad", XQUAD_LANGS, "google/xquad", "xquad.{lang}", splits={"validation": ALL},
    split_names=EVAL_ONLY, tfds_name="xquad/{lang}", tfds_split_names={"test": "test"},
    url="https://github.com/google-deepmind/xquad/raw/master/xquad.{lang}.json", license="CC BY-SA 4.0",
    verified="hub commit 'Convert dataset to Parquet' (xquad.{lang}/validation-*.parquet); "
             "TFDS catalog xquad/{lang}",
    target="xquad/xquad.{lang}.json", writer="squad")
MLQA_SOURCE = SourceRow(
    "mlqa", MLQA_LANGS, "google/xtreme", "MLQA.{lang}.{lang}", splits={"validation": ALL, "test": ALL},
    split_names=DEV, tfds_name="mlqa/{lang}", tfds_split_names=DEV,
    url="https://dl.fbaipublicfiles.com/MLQA/MLQA_V1.zip", license="CC BY-SA 3.0",
    verified=f"{XTREME_SHA}: MLQA.zh.zh 5.64k rows, MLQA.en.en 12.7k (validation + test)",
    target="mlqa/{split}/{split}-context-{lang}-question-{lang}.json", writer="squad")
TYDIQA_SOURCE = SourceRow(
    "tydiqa", TYDIQA_LANGS, "google-research-datasets/tydiqa", "secondary_task", splits=TV,
    split_names=EVAL_ONLY, id_prefixes=TYDIQA_ID_PREFIX, tfds_name="tydi_qa/goldp",
    tfds_split_names=EVAL_ONLY,
    url="https://storage.googleapis.com/tydiqa/v1.1/tydiqa-goldp-v1.1-{train,dev}.json",
    license="Apache 2.0",
    verified="hub commit da78f23 'Convert dataset to Parquet' (secondary_task train/validation)",
    target="tydiqa/tydiqa.goldp.{lang}.{split}.json", writer="squad")


def _target(source: SourceRow, train: tuple[str, ...], submission: Submission) -> TaskCard:
  """A QA target of XTREME and XTREME-R alike, evaluated on its source's languages."""
  entry = BenchmarkEntry(source.languages, train, "qa")
  return TaskCard(source.task, source, benchmarks={"xtreme": entry, "xtreme-r": entry}, score_metrics=QA_METRICS,
                  submission=submission, text_to_text=forms.QA)


for _task, _card in (
    (ExtractiveQATask("squad_v1", "squad_v1", SQUAD_V1_SOURCE.hub_defaults()),
     TaskCard("squad_v1", SQUAD_V1_SOURCE, intermediate=True, text_to_text=forms.QA)),
    (ExtractiveQATask("squad_v2", "squad_v2", SQUAD_V2_SOURCE.hub_defaults(), with_negative=True),
     TaskCard("squad_v2", SQUAD_V2_SOURCE, intermediate=True, text_to_text=forms.QA)),
    (ExtractiveQATask("xquad", "squad_v1", XQUAD_SOURCE.hub_defaults()),
     _target(XQUAD_SOURCE, ("squad_v1",), Submission(SQUAD, ("xquad.{lang}.json", "xquad/xquad.{lang}.json")))),
    (ExtractiveQATask("mlqa", "mlqa", MLQA_SOURCE.hub_defaults()),
     _target(MLQA_SOURCE, ("squad_v1",), Submission(MLQA, (
         "test-context-{lang}-question-{lang}.json", "test/test-context-{lang}-question-{lang}.json",
         "MLQA_V1/test/test-context-{lang}-question-{lang}.json")))),
    (ExtractiveQATask("tydiqa", "squad_v1", TYDIQA_SOURCE.hub_defaults()),
     _target(TYDIQA_SOURCE, ("tydiqa",), Submission(SQUAD, (
         "tydiqa.goldp.{lang}.dev.json", "tydiqa-goldp-v1.1-dev/tydiqa.goldp.{lang}.dev.json")))),
):
  register(_task, _card)
