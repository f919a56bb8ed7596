"""Multiple choice: HellaSwag, CommonsenseQA, Cosmos QA (Phang et al.'s intermediate tasks) and XCOPA
with the English tasks XTREME-R trains it on, Social IQa then COPA.

Each example becomes C (first segment, second segment) pairs tokenised into [N, C, L] arrays;
`labels` [N] is the index of the correct choice. The segments follow each dataset's baseline:
- HellaSwag (jiant; HF run_swag): (ctx_a, ctx_b + " " + ending), i.e. (context, question + choice)
- CommonsenseQA (jiant): (question, choice)
- Cosmos QA (jiant): (context + " " + question, choice)
- XCOPA and COPA (XTREME-R third_party/run_xcopa.py): (premise + " What was the {cause|effect}?", choice)
- Social IQa (XTREME-R run_xcopa.py): (context + " " + question, choice)
Truncation cuts the longer segment first; an example counts as truncated when any choice is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xtjax.data.formats import (MultipleChoiceExample, read_commonsenseqa, read_copa, read_cosmosqa,
                                read_hellaswag, read_siqa)
from xtjax.data.formats.records import ReadResult
from xtjax.data.sources import DataSource, HubDefaults, local_path, source_rows, with_hub_defaults
from xtjax.errors import DataError
from xtjax.metrics import accuracy
from xtjax.tasks import featurize as fz
from xtjax.tasks.base import Features, FeatureSettings, Task
from xtjax.tasks import t2t_forms as forms
from xtjax.tasks.card import BenchmarkEntry, TaskCard, langs
from xtjax.tasks.registry import register
from xtjax.tasks.source_table import ALL, DEV, EN, EVAL_ONLY, TV, TVT, SourceRow
from xtjax.tasks.submission_formats import LABELS, Submission

Segments = Callable[[MultipleChoiceExample, str], tuple[str, str]]


def _join(*parts: str | None) -> str:
  return " ".join(p.strip() for p in parts if p and p.strip())


def context_then_question_choice(ex: MultipleChoiceExample, choice: str) -> tuple[str, str]:
  return ex.context or "", _join(ex.question, choice)


def question_then_choice(ex: MultipleChoiceExample, choice: str) -> tuple[str, str]:
  return _join(ex.context, ex.question), choice


def copa_prompt_then_choice(ex: MultipleChoiceExample, choice: str) -> tuple[str, str]:
  return f"{ex.context} What was the {ex.question}?", choice


# ---- hub rows -> records ------------------------------------------------------------------------

def _index_label(value, n: int, where: str, index: int, base: int = 0) -> int | None:
  """A choice label given as int or digit string ('' / -1: unlabelled), shifted by `base`."""
  if value is None or value == "" or value == -1:
    return None
  try:
    label = int(value) - base
  except (TypeError, ValueError):
    raise DataError(f"{where} row {index} [label]: {value!r} is not a choice number") from None
  if not 0 <= label < n:
    raise DataError(f"{where} row {index} [label]: {value!r} is not one of {n} choices")
  return label


def hellaswag_row(row: Mapping, i: int, where: str) -> MultipleChoiceExample:
  endings = fz.field(row, "endings", where, i, list)
  return MultipleChoiceExample(fz.row_guid(row, ("ind", "id"), i), fz.field(row, "ctx_a", where, i),
                               fz.field(row, "ctx_b", where, i), tuple(endings),
                               _index_label(row.get("label"), len(endings), where, i))


def commonsenseqa_row(row: Mapping, i: int, where: str) -> MultipleChoiceExample:
  question = fz.field(row, "question", where, i, (str, Mapping))
  stem = question["stem"] if isinstance(question, Mapping) else question
  choices = fz.field(row, "choices", where, i, (Mapping, list))
  if isinstance(choices, Mapping):  # hub: {label: [...], text: [...]}
    keys, texts = list(choices["label"]), list(choices["text"])
  else:  # upstream jsonl nesting
    keys, texts = [c["label"] for c in choices], [c["text"] for c in choices]
  answer = row.get("answerKey") or None
  if answer is not None and answer not in keys:
    raise DataError(f"{where} row {i} [answerKey]: {answer!r} is not one of {keys}")
  return MultipleChoiceExample(fz.row_guid(row, ("id",), i), None, stem, tuple(texts),
                               keys.index(answer) if answer is not None else None)


def cosmosqa_row(row: Mapping, i: int, where: str) -> MultipleChoiceExample:
  choices = tuple(fz.field(row, f"answer{k}", where, i) for k in range(4))
  return MultipleChoiceExample(fz.row_guid(row, ("id",), i), fz.field(row, "context", where, i),
                               fz.field(row, "question", where, i), choices,
                               _index_label(row.get("label"), 4, where, i))


def copa_row(row: Mapping, i: int, where: str) -> MultipleChoiceExample:
  question = fz.field(row, "question", where, i)
  if question not in ("cause", "effect"):
    raise DataError(f"{where} row {i} [question]: {question!r} is not 'cause' or 'effect'")
  choices = (fz.field(row, "choice1", where, i), fz.field(row, "choice2", where, i))
  return MultipleChoiceExample(fz.row_guid(row, ("idx", "id"), i), fz.field(row, "premise", where, i), question,
                               choices, _index_label(row.get("label"), 2, where, i))


def siqa_row(row: Mapping, i: int, where: str) -> MultipleChoiceExample:
  choices = tuple(fz.field(row, f"answer{k}", where, i) for k in "ABC")
  return MultipleChoiceExample(fz.row_guid(row, ("id",), i), fz.field(row, "context", where, i),
                               fz.field(row, "question", where, i), choices,
                               _index_label(row.get("label"), 3, where, i, base=1))  # labels are "1".."3"


def read_siqa_split(path: Path) -> ReadResult:
  """Social IQa `{split}.jsonl` with the `{split}-labels.lst` next to it (when present)."""
  labels = Path(path).with_name(f"{Path(path).name.split('.')[0]}-labels.lst")
  return read_siqa(path, labels if labels.exists() else None)


class MultipleChoiceTask(Task):
  """A task with a fixed number of choices and the `multiple_choice` head (inputs [N, C, L])."""

  head_type = "multiple_choice"
  main_metric = "accuracy"

  def __init__(self, name: str, num_choices: int, segments: Segments, local_reader, row_reader,
               hub: HubDefaults | None = None):
    self.name = name
    self.num_choices = num_choices
    self.num_labels = num_choices
    self.segments = segments
    self.local_reader = local_reader
    self.row_reader = row_reader
    self.hub = hub

  def fingerprint(self) -> dict[str, Any]:
    return {"task": self.name, "num_choices": self.num_choices, "segments": self.segments.__name__}

  def read(self, split: str, language: str, source: DataSource) -> list[MultipleChoiceExample]:
    if source.kind == "local":
      path = local_path(source, split, language, self.name)
      return fz.limited(self.local_reader(path).examples, source)
    source = with_hub_defaults(source, self.hub)
    rows, where = source_rows(source, split, language, self.name)
    return [self.row_reader(row, i, where) for i, row in enumerate(rows)]

  def source_files(self, split: str, language: str, source: DataSource) -> list[Path]:
    if source.kind != "local":
      return []
    path = local_path(source, split, language, self.name)
    labels = path.with_name(f"{path.name.split('.')[0]}-labels.lst")
    return [path, labels] if self.local_reader is read_siqa_split and labels.exists() else [path]

  def featurize(self, examples: Sequence[MultipleChoiceExample], tokenizer, settings: FeatureSettings) -> Features:
    fz.require_fast(tokenizer, self.name)
    C, n = self.num_choices, len(examples)
    firsts, seconds = [], []
    for e in examples:
      if len(e.choices) != C:
        raise DataError(f"task {self.name!r}: example {e.guid!r} has {len(e.choices)} choices, expected {C}")
      for choice in e.choices:
        a, b = self.segments(e, choice)
        firsts.append(a)
        seconds.append(b)
    flat, truncated, _ = fz.encode(tokenizer, firsts, seconds, settings.max_length)
    arrays = {k: v.reshape(n, C, settings.max_length) for k, v in flat.items()}
    arrays["labels"] = np.array([fz.IGNORE if e.label is None else e.label for e in examples], np.int32)
    truncated_examples = int(truncated.reshape(n, C).any(axis=1).sum()) if n else 0
    return Features(arrays, np.arange(n), stats={"truncated": truncated_examples,
                                                 "truncated_choices": int(truncated.sum())})

  def stats(self, examples, features: Features) -> dict[str, Any]:
    return fz.basic_stats(examples, features, [e.label for e in examples])

  def predict(self, outputs, features: Features, examples, settings: FeatureSettings) -> list[int]:
    """Choice scores [N, C] -> the index of the chosen answer per example."""
    return fz.scatter_by_example([int(i) for i in np.asarray(outputs).argmax(-1)], features, len(examples))

  def score(self, predictions: Sequence[int], examples, language: str) -> dict[str, float]:
    gold = [e.label for e in examples]
    if any(g is None for g in gold):
      raise DataError(f"task {self.name!r} ({language}): unlabelled examples cannot be scored")
    return {"accuracy": accuracy([int(p) for p in predictions], gold)}

  def submission_text(self, predictions: Sequence[int], examples) -> tuple[str, str]:
    """One predicted choice index per line (`test-{lang}.tsv`)."""
    return "tsv", "".join(f"{int(p)}\n" for p in predictions)


# ---- registrations: each task with its card ------------------------------------------------------

# google-research/xtreme scripts/train_xcopa.sh.
XCOPA_LANGS = langs("et,ht,id,it,qu,sw,ta,th,tr,vi,zh")

HELLASWAG_SOURCE = SourceRow(
    "hellaswag", EN, "Rowan/hellaswag", None, hf_revision="refs/convert/parquet", splits=TVT,
    split_names=DEV, tfds_name="hellaswag", tfds_split_names=DEV,
    url="https://github.com/rowanz/hellaswag/tree/master/data (disabled by a DMCA claim on "
        "2026-09-14: the hub copy is the source)", license="MIT",
    verified="hub viewer Rowan/hellaswag (train 39.9k, validation 10k, test 10k); sgl-project/sglang "
             "#39481: validation 10042 rows; the parquet conversion branch is pinned (main held a script)")
COMMONSENSEQA_SOURCE = SourceRow(
    "commonsenseqa", EN, "tau/commonsense_qa", None, splits=TVT, split_names=DEV,
    url="https://s3.amazonaws.com/commensenseqa/train_rand_split.jsonl", license="MIT",
    verified="not verified (no card in the search corpus); assumed parquet")
COSMOSQA_SOURCE = SourceRow(
    "cosmosqa", EN, "allenai/cosmos_qa", None, hf_revision="refs/convert/parquet", splits=TVT,
    split_names=DEV, tfds_name="cosmos_qa", tfds_split_names=DEV,
    url="https://github.com/wilburOne/cosmosqa/tree/master/data", license="CC BY 4.0",
    verified="not verified on the hub (script repo assumed; the parquet conversion branch is pinned)")
XCOPA_SOURCE = SourceRow(
    "xcopa", XCOPA_LANGS, "cambridgeltl/xcopa", "{lang}", splits={"validation": ALL, "test": ALL},
    split_names=DEV, url="https://github.com/cambridgeltl/xcopa/tree/master/data", license="CC BY 4.0",
    verified="hub commit 042f789 'Convert dataset to Parquet (#3)': one config per language, "
             "validation 100 / test 500")
SIQA_SOURCE = SourceRow(
    "siqa", EN, "lighteval/siqa", None, hf_revision="54c6a1f8cb6daf4f5abf24a601852612fb35eb25",
    splits=TV, split_names=EVAL_ONLY,
    url="https://storage.googleapis.com/ai2-mosaic/public/socialiqa/socialiqa-train-dev.zip",
    license="CC BY 4.0",
    verified="hub card lighteval/siqa@54c6a1f: parquet, train 33410 / validation 1954, fields "
             "context question answerA-C label ('1'-'3'); allenai/social_i_qa is script-only")
COPA_SOURCE = SourceRow(
    "copa", EN, "aps/super_glue", "copa", hf_revision="refs/convert/parquet", splits=TVT,
    split_names=DEV, tfds_name="super_glue/copa", tfds_split_names=DEV,
    url="https://dl.fbaipublicfiles.com/glue/superglue/data/v2/COPA.zip", license="BSD 2-Clause",
    verified="hub parquet-converter commits (copa/{train,validation,test}/0000.parquet); main holds a "
             "loading script; TFDS super_glue/copa")

XCOPA = {"xtreme-r": BenchmarkEntry(XCOPA_LANGS, ("siqa", "copa"), "classification")}
XCOPA_SUBMISSION = Submission(LABELS, ("test.{lang}.jsonl", "{lang}/test.{lang}.jsonl", "data/{lang}/test.{lang}.jsonl"))

for _source, _choices, _segments, _read, _row, _card in (
    (HELLASWAG_SOURCE, 4, context_then_question_choice, read_hellaswag, hellaswag_row, {"intermediate": True}),
    (COMMONSENSEQA_SOURCE, 5, question_then_choice, read_commonsenseqa, commonsenseqa_row, {"intermediate": True}),
    (COSMOSQA_SOURCE, 4, question_then_choice, read_cosmosqa, cosmosqa_row, {"intermediate": True}),
    (XCOPA_SOURCE, 2, copa_prompt_then_choice, read_copa, copa_row,
     {"benchmarks": XCOPA, "score_metrics": LABELS.metrics, "submission": XCOPA_SUBMISSION}),
    (SIQA_SOURCE, 3, question_then_choice, read_siqa_split, siqa_row, {}),
    (COPA_SOURCE, 2, copa_prompt_then_choice, read_copa, copa_row, {}),
):
  register(MultipleChoiceTask(_source.task, _choices, _segments, _read, _row, _source.hub_defaults()),
           TaskCard(_source.task, _source, text_to_text=forms.multiple_choice(_source.task), **_card))
