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
from xtjax.tasks.registry import register
from xtjax.tasks.source_table import hub_defaults

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


for _name, _choices, _segments, _read, _row in (
    ("hellaswag", 4, context_then_question_choice, read_hellaswag, hellaswag_row),
    ("commonsenseqa", 5, question_then_choice, read_commonsenseqa, commonsenseqa_row),
    ("cosmosqa", 4, question_then_choice, read_cosmosqa, cosmosqa_row),
    ("xcopa", 2, copa_prompt_then_choice, read_copa, copa_row),
    ("siqa", 3, question_then_choice, read_siqa_split, siqa_row),
    ("copa", 2, copa_prompt_then_choice, read_copa, copa_row),
):
  register(MultipleChoiceTask(_name, _choices, _segments, _read, _row, hub_defaults(_name)))
