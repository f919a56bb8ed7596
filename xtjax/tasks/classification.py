"""Sentence-pair classification: MNLI, ANLI+ and QQP (Phang et al.'s intermediate tasks), XNLI and PAWS-X.

Label orders (head output ids):
- NLI (mnli, anli_plus, xnli): contradiction, entailment, neutral. This is XTREME's
  `XnliProcessor.get_labels()` (google-research/xtreme third_party/processors/xnli.py) and jiant's
  MNLI; the three tasks share it, so an MNLI- or ANLI+-trained head is XNLI's head.
- PAWS-X and QQP: "0", "1" (XTREME's PAWS-X processor; QQP's is_duplicate).
Hub ClassLabels (glue/mnli, snli, anli, xnli; TFDS xnli and multi_nli) number NLI as
entailment=0, neutral=1, contradiction=2; rows are converted by name, never by id.

Sources: local upstream files through `xtjax.data.formats` (the format is detected from the
file: XNLI-1.0 all-language TSV, GLUE/XNLI-MT MNLI TSV, SNLI/MNLI/ANLI jsonl, XTREME's processed
`{split}-{lang}.tsv`, PAWS-X TSV, GLUE QQP TSV), hub rows or TFDS rows. ANLI+ trains on several
files: with a local source, `files` keys `{split}.anli_r1`, `{split}.anli_r2`, `{split}.anli_r3`,
`{split}.mnli`, `{split}.snli` (those present are read, in that order; e.g. dev = the three ANLI
dev files); alternatively `source` may be a mapping {component: DataSource} of any kinds.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xtjax.data.formats import (read_anli, read_mnli, read_nli_jsonl, read_pawsx, read_qqp, read_xnli,
                                read_xtreme_pairs)
from xtjax.data.formats.common import iter_lines
from xtjax.data.formats.records import ClassificationExample, ReadResult
from xtjax.data.sources import DataSource, HubDefaults, local_path, source_rows, with_hub_defaults
from xtjax.errors import DataError
from xtjax.metrics import accuracy
from xtjax.tasks import featurize as fz
from xtjax.tasks import registry
from xtjax.tasks import t2t_forms as forms
from xtjax.tasks.base import Features, FeatureSettings, Task
from xtjax.tasks.card import BenchmarkEntry, TaskCard, langs
from xtjax.tasks.registry import register
from xtjax.tasks.source_check import hub_defaults
from xtjax.tasks.source_table import ALL, DEV, EN, TVT, SourceRow
from xtjax.tasks.submission_formats import LABELS, Submission

NLI_LABELS = ("contradiction", "entailment", "neutral")
BINARY_LABELS = ("0", "1")
HUB_NLI_NAMES = ("entailment", "neutral", "contradiction")
_NLI_ALIASES = {"e": "entailment", "n": "neutral", "c": "contradiction", "contradictory": "contradiction"}
ANLI_PLUS_COMPONENTS = ("anli_r1", "anli_r2", "anli_r3", "mnli", "snli")


def _first_line(path: Path) -> str:
  for _, line in iter_lines(path):
    if line.strip():
      return line
  raise DataError(f"{path}: empty file")


def read_nli_file(path: Path, language: str) -> ReadResult:
  """Any NLI upstream file, by its layout: ANLI / SNLI / MNLI jsonl, XNLI-1.0 TSV (rows of
  `language` only), GLUE or XNLI-MT MNLI TSV, or XTREME's header-less `{split}-{lang}.tsv`."""
  path = Path(path)
  first = _first_line(path)
  if ".jsonl" in path.suffixes:
    try:
      keys = json.loads(first)
    except json.JSONDecodeError:
      keys = {}
    return read_anli(path) if "uid" in keys else read_nli_jsonl(path)
  header = first.split("\t")
  if "gold_label" in header and "language" in header:
    return read_xnli(path, language=language)
  if "premise" in header or "sentence1" in header:
    return read_mnli(path)
  return read_xtreme_pairs(path, labels=NLI_LABELS)


def read_paws_file(path: Path, language: str) -> ReadResult:
  """PAWS-X TSV with its `id sentence1 sentence2 label` header, or XTREME's processed pair file."""
  header = _first_line(Path(path)).split("\t")
  if header[:1] == ["id"] and "sentence1" in header:
    return read_pawsx(path)
  return read_xtreme_pairs(path, labels=BINARY_LABELS)


def read_qqp_file(path: Path, language: str) -> ReadResult:
  return read_qqp(path)


def _component_reader(component: str) -> Callable[[Path, str], ReadResult]:
  return (lambda path, language: read_anli(path)) if component.startswith("anli") else read_nli_file


def nli_row(row: Mapping, index: int, where: str, language: str, split: str) -> ClassificationExample | None:
  """A hub / TFDS NLI row -> example; None for a row without a gold label (label -1 or '-').

  Handles glue/mnli, snli, anli, xnli (one language, or `all_languages` / TFDS xnli where the
  premise maps language -> text and the hypothesis is {language: [...], translation: [...]}) and
  TFDS multi_nli. A -1 label in a test split means unlabelled (kept, label None).
  """
  premise = fz.field(row, ("premise", "sentence1", "context"), where, index, (str, Mapping))
  hypothesis = fz.field(row, ("hypothesis", "sentence2"), where, index, (str, Mapping))
  if isinstance(premise, Mapping):
    if language not in premise:
      raise DataError(f"{where} row {index} [premise]: no {language!r} text (has {sorted(premise)})")
    premise = premise[language]
  if isinstance(hypothesis, Mapping):
    languages = list(hypothesis.get("language", []))
    if language not in languages:
      raise DataError(f"{where} row {index} [hypothesis.language]: no {language!r} translation")
    hypothesis = hypothesis["translation"][languages.index(language)]
  label = fz.field(row, ("label", "gold_label"), where, index, (int, str), optional=True)
  if isinstance(label, int):
    if label < 0:
      if split != "test":
        return None
      label = None
    elif label >= len(HUB_NLI_NAMES):
      raise DataError(f"{where} row {index} [label]: {label} is not an NLI class id 0-2")
    else:
      label = HUB_NLI_NAMES[label]
  elif label is not None:
    if label in ("-", ""):
      return None
    label = _NLI_ALIASES.get(label, label)
    if label not in NLI_LABELS:
      raise DataError(f"{where} row {index} [label]: {label!r} is not an NLI label")
  return ClassificationExample(fz.row_guid(row, ("uid", "pairID", "idx", "id"), index), premise, hypothesis, label)


def pair_row(row: Mapping, index: int, where: str, language: str, split: str) -> ClassificationExample | None:
  """A hub paraphrase row (glue/qqp: question1/2; paws-x: sentence1/2) with a 0/1 label."""
  text_a = fz.field(row, ("sentence1", "question1"), where, index)
  text_b = fz.field(row, ("sentence2", "question2"), where, index)
  label = fz.field(row, ("label", "is_duplicate"), where, index, (int, str), optional=True)
  if label is not None:
    label = str(label)
    if label == "-1":
      if split != "test":
        return None
      label = None
    elif label not in BINARY_LABELS:
      raise DataError(f"{where} row {index} [label]: {label!r} is not 0 or 1")
  return ClassificationExample(fz.row_guid(row, ("id", "idx"), index), text_a, text_b, label)



class PairClassificationTask(Task):
  """A (pair) classification task with a fixed label vocabulary and the `classification` head."""

  head_type = "classification"
  main_metric = "accuracy"

  def __init__(self, name: str, labels: Sequence[str], local_reader, row_reader, hub: HubDefaults | None = None,
               components: Sequence[str] = (), with_f1: bool = False):
    self.name = name
    self.labels = tuple(labels)
    self.local_reader = local_reader
    self.row_reader = row_reader
    self.hub = hub
    self.components = tuple(components)
    self.with_f1 = with_f1

  @property
  def num_labels(self) -> int:
    return len(self.labels)

  def fingerprint(self) -> dict[str, Any]:
    """What of the task changes its features (part of the feature-cache key)."""
    return {"task": self.name, "labels": list(self.labels)}

  # ---- data -----------------------------------------------------------------------------------

  def read(self, split: str, language: str, source: DataSource | Mapping[str, DataSource]):
    if not isinstance(source, Mapping) and source.kind != "local" and self.components:
      source = dict.fromkeys(self.components, source)  # hub / TFDS: each component from its own default
    if isinstance(source, Mapping):  # several sources: {component: DataSource}
      examples, rows = [], registry.source_rows()
      for component, sub in source.items():
        hub = hub_defaults(component) if component in rows else None
        examples += _prefixed(self._read_one(split, language, sub, _component_reader(component), hub), component)
      return examples
    if source.kind == "local" and self.components:
      parts = self._component_files(split, source)
      if parts:
        examples = []
        for component, path in parts:
          read = _component_reader(component)
          examples += _prefixed(fz.limited(read(path, language).examples, source), component)
        return examples
    return self._read_one(split, language, source, self.local_reader)

  def _read_one(self, split, language, source: DataSource, local_reader, hub: HubDefaults | None = None
                ) -> list[ClassificationExample]:
    if source.kind == "local":
      return fz.limited(local_reader(local_path(source, split, language, self.name), language).examples, source)
    source = with_hub_defaults(source, hub or self.hub)
    rows, where = source_rows(source, split, language, self.name)
    examples = []
    for i, row in enumerate(rows):
      example = self.row_reader(row, i, where, language, split)
      if example is not None:
        examples.append(example)
    return examples

  def _component_files(self, split: str, source: DataSource) -> list[tuple[str, Path]]:
    keys = [c for c in self.components if f"{split}.{c}" in source.files]
    return [(c, local_path(source, split, c, self.name)) for c in keys]

  def source_files(self, split: str, language: str, source) -> list[Path]:
    """The local files `read` uses (for the feature-cache key)."""
    if isinstance(source, Mapping):
      return [p for sub in source.values() for p in self.source_files(split, language, sub)]
    if source.kind != "local":
      return []
    parts = self._component_files(split, source) if self.components else []
    return [p for _, p in parts] or [local_path(source, split, language, self.name)]

  def featurize(self, examples: Sequence[ClassificationExample], tokenizer, settings: FeatureSettings) -> Features:
    fz.require_fast(tokenizer, self.name)
    texts_b = [e.text_b for e in examples]
    if all(t is None for t in texts_b):
      texts_b = None
    elif any(t is None for t in texts_b):
      raise DataError(f"task {self.name!r}: some examples are sentence pairs and some single sentences")
    arrays, truncated, _ = fz.encode(tokenizer, [e.text_a for e in examples], texts_b, settings.max_length)
    arrays["labels"] = fz.label_ids([e.label for e in examples], self.labels, self.name,
                                    [e.guid for e in examples])
    n = len(examples)
    return Features(arrays, np.arange(n), stats={"truncated": int(truncated.sum())})

  def stats(self, examples, features: Features) -> dict[str, Any]:
    return fz.basic_stats(examples, features, [e.label for e in examples])

  # ---- evaluation -----------------------------------------------------------------------------

  def predict(self, outputs, features: Features, examples, settings: FeatureSettings) -> list[str]:
    """Logits [N, num_labels] -> the label string of each example."""
    ids = np.asarray(outputs).argmax(-1)
    return fz.scatter_by_example([self.labels[i] for i in ids], features, len(examples))

  def score(self, predictions: Sequence[str], examples, language: str) -> dict[str, float]:
    gold = [e.label for e in examples]
    if any(g is None for g in gold):
      raise DataError(f"task {self.name!r} ({language}): unlabelled examples cannot be scored")
    scores = {"accuracy": accuracy(list(predictions), gold)}
    if self.with_f1:
      scores["f1"] = binary_f1(predictions, gold, positive=self.labels[-1])
    return scores

  def submission_text(self, predictions: Sequence[str], examples) -> tuple[str, str]:
    """XTREME's submission file: one predicted label per line (`test-{lang}.tsv`)."""
    return "tsv", "".join(f"{p}\n" for p in predictions)


def binary_f1(predictions: Sequence[str], gold: Sequence[str], positive: str) -> float:
  """F1 of the positive class in percent (QQP's second metric, as GLUE reports it)."""
  tp = sum(p == positive and g == positive for p, g in zip(predictions, gold))
  fp = sum(p == positive and g != positive for p, g in zip(predictions, gold))
  fn = sum(p != positive and g == positive for p, g in zip(predictions, gold))
  return 100.0 * 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def _prefixed(examples: list[ClassificationExample], component: str) -> list[ClassificationExample]:
  return [dataclasses.replace(e, guid=f"{component}-{e.guid}") for e in examples]


# ---- registrations: each task with its card ------------------------------------------------------

# google-research/xtreme evaluate.py TASK2LANGS.
XNLI_LANGS = langs("ar,bg,de,el,en,es,fr,hi,ru,sw,th,tr,ur,vi,zh")
PAWSX_LANGS = langs("de,en,es,fr,ja,ko,zh")

XNLI_SOURCE = SourceRow(
    "xnli", XNLI_LANGS, "facebook/xnli", "{lang}", splits=TVT, split_names=DEV,
    tfds_name="xnli", tfds_split_names=DEV,
    url="https://dl.fbaipublicfiles.com/XNLI/XNLI-1.0.zip (dev/test); MNLI for train",
    license="CC BY-NC 4.0",
    verified="hub commit b8dd5d7 'Convert dataset to Parquet (#10)'; per-language parquet folders")
PAWSX_SOURCE = SourceRow(
    "pawsx", PAWSX_LANGS, "google-research-datasets/paws-x", "{lang}", splits=TVT, split_names=DEV,
    tfds_name="paws_x_wiki/{lang}", tfds_split_names=DEV,
    url="https://storage.googleapis.com/paws/pawsx/x-final.tar.gz", license="custom (free use, cite)",
    verified="not verified on the hub here; TFDS paws_x_wiki configs de..zh (tfds 4.9.10); "
             "google/xtreme PAWS-X.<lang> is a verified parquet copy (validation/test 2000)")
MNLI_SOURCE = SourceRow(
    "mnli", EN, "nyu-mll/glue", "mnli",
    splits={"train": ALL, "validation_matched": ALL, "test_matched": ALL},
    split_names={"dev": "validation_matched", "test": "test_matched"}, tfds_name="multi_nli",
    tfds_split_names={"dev": "validation_matched"},
    url="https://cims.nyu.edu/~sbowman/multinli/multinli_1.0.zip", license="OANC / CC BY-SA 3.0 (mixed)",
    verified="not verified here (nyu-mll/glue is the canonical GLUE parquet repo)")
QQP_SOURCE = SourceRow(
    "qqp", EN, "nyu-mll/glue", "qqp", splits=TVT, split_names=DEV, tfds_name="glue/qqp",
    tfds_split_names=DEV, url="https://dl.fbaipublicfiles.com/glue/data/QQP-clean.zip",
    license="Quora terms (non-commercial)",
    verified="TFDS glue/qqp config (tfds 4.9.10); hub not verified here")
ANLI_PLUS_SOURCE = SourceRow(
    "anli_plus", EN, None, url="https://dl.fbaipublicfiles.com/anli/anli_v1.0.zip "
                           "https://nlp.stanford.edu/projects/snli/snli_1.0.zip",
    license="CC BY-NC 4.0 (ANLI), CC BY-SA 4.0 (SNLI)",
    components=ANLI_PLUS_COMPONENTS)
ANLI_ROUNDS = tuple(SourceRow(
    f"anli_r{r}", EN, "facebook/anli", "plain_text",
    splits={f"{s}_r{r}": ALL for s in ("train", "dev", "test")},
    split_names={"train": f"train_r{r}", "dev": f"dev_r{r}", "test": f"test_r{r}"},
    url="https://dl.fbaipublicfiles.com/anli/anli_v1.0.zip", license="CC BY-NC 4.0",
    verified="hub commit 'Convert dataset to Parquet' (plain_text/{train,dev,test}_r1..3)")
    for r in (1, 2, 3))
SNLI_SOURCE = SourceRow(
    "snli", EN, "stanfordnlp/snli", "plain_text", splits=TVT, split_names=DEV,
    url="https://nlp.stanford.edu/projects/snli/snli_1.0.zip", license="CC BY-SA 4.0",
    verified="hub commit 5e5f553 'Convert dataset to Parquet' (train 550152 / validation / test 10000)")

register(PairClassificationTask("anli_plus", NLI_LABELS, read_nli_file, nli_row, components=ANLI_PLUS_COMPONENTS),
         TaskCard("anli_plus", ANLI_PLUS_SOURCE, parts=(*ANLI_ROUNDS, SNLI_SOURCE), intermediate=True,
                  text_to_text=forms.NLI))
register(PairClassificationTask("mnli", NLI_LABELS, read_nli_file, nli_row, MNLI_SOURCE.hub_defaults()),
         TaskCard("mnli", MNLI_SOURCE, intermediate=True, text_to_text=forms.NLI))
register(PairClassificationTask("qqp", BINARY_LABELS, read_qqp_file, pair_row, QQP_SOURCE.hub_defaults(),
                                with_f1=True),
         TaskCard("qqp", QQP_SOURCE, intermediate=True, text_to_text=forms.QQP))
register(PairClassificationTask("xnli", NLI_LABELS, read_nli_file, nli_row, XNLI_SOURCE.hub_defaults()),
         TaskCard("xnli", XNLI_SOURCE, benchmarks={
             "xtreme": BenchmarkEntry(XNLI_LANGS, ("mnli",), "classification"),
             "xtreme-r": BenchmarkEntry(XNLI_LANGS, ("mnli",), "classification")},
             score_metrics=LABELS.metrics, submission=Submission(LABELS, ("xnli.test.tsv", "XNLI-1.0/xnli.test.tsv")),
             text_to_text=forms.NLI))
register(PairClassificationTask("pawsx", BINARY_LABELS, read_paws_file, pair_row, PAWSX_SOURCE.hub_defaults()),
         TaskCard("pawsx", PAWSX_SOURCE, benchmarks={
             "xtreme": BenchmarkEntry(PAWSX_LANGS, ("pawsx",), "classification")},
             score_metrics=LABELS.metrics,
             submission=Submission(LABELS, ("{lang}/test_2k.tsv", "x-final/{lang}/test_2k.tsv")),
             text_to_text=forms.PAWS))
