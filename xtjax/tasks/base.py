"""The contract between tasks and the trainer / evaluator.

A task reads examples from its sources, featurises them with a tokenizer into fixed-length numpy
arrays, names the head it needs, and turns the head's outputs back into predictions and official
scores. The trainer only ever sees `Task`, `Features` and `FeatureSettings`.

Every hook the rest of xtjax calls is declared on `Task`: four abstract methods every task writes,
and hooks with defaults a task overrides when it has more to say (the feature cache's key and
state, `xtjax data stats`, submission files). Nobody probes a task with `hasattr`.
"""

from __future__ import annotations

import abc
import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from xtjax.data.sources import DataSource, local_path
from xtjax.errors import XtjaxError
from xtjax.tasks.featurize import basic_stats


@dataclasses.dataclass(frozen=True)
class FeatureSettings:
  """Every setting that changes featurisation (and so the feature-cache key)."""

  max_length: int = 128
  doc_stride: int = 128  # QA: tokens of overlap between windows of a long context
  max_query_length: int = 64
  max_answer_length: int = 30  # QA post-processing
  n_best: int = 20  # QA post-processing
  max_target_length: int = 32  # text-to-text: target tokens (EOS included); inputs use max_length
  # Text-to-text training: pack several examples into each row (xtjax.data.packing), applied to the
  # cached features, so no part of the feature-cache key (`AFTER_CACHE`).
  pack: bool = False

  AFTER_CACHE: ClassVar[tuple[str, ...]] = ("pack",)

  def __post_init__(self):
    from xtjax.config import check_min

    check_min(self, 1, "max_length", "doc_stride", "max_query_length", "max_answer_length", "n_best")


@dataclasses.dataclass
class Features:
  """Model inputs and labels, one row per feature (a QA example may give several windows).

  `arrays` always holds `input_ids` and `attention_mask` ([N, L], or [N, C, L] for multiple choice)
  plus the labels the head's loss needs (`labels`, or `start_positions`/`end_positions`).
  `example_index[i]` is the example that feature i came from. `extra` holds what post-processing
  needs (e.g. offset mappings). `stats` counts truncation and deliberate skips.
  """

  arrays: dict[str, np.ndarray]
  example_index: np.ndarray
  extra: Any = None
  stats: dict[str, int] = dataclasses.field(default_factory=dict)

  def __len__(self) -> int:
    return int(self.example_index.shape[0])


class Task(abc.ABC):
  """A named task. Subclasses register themselves with `xtjax.tasks.registry.register`."""

  name: str
  head_type: str  # classification | multiple_choice | span | tagging | mlm
  num_labels: int = 2
  main_metric: str = "accuracy"  # the dev metric used for model selection
  # The default hub / TFDS source (xtjax.data.sources.HubDefaults from tasks/source_table.py), or None
  # for tasks read from local files only; part of the feature-cache key.
  hub: Any = None

  @property
  def source_name(self) -> str:
    """The task whose data, languages and source-table row this task uses (itself; a wrapper's base)."""
    return self.name

  @abc.abstractmethod
  def read(self, split: str, language: str, source: Any) -> Sequence[Any]:
    """Examples of one split and language from the task's data source."""

  @abc.abstractmethod
  def featurize(self, examples: Sequence[Any], tokenizer, settings: FeatureSettings) -> Features:
    """Tokenised fixed-length features (batched fast-tokenizer calls)."""

  @abc.abstractmethod
  def predict(self, outputs: Any, features: Features, examples: Sequence[Any], settings: FeatureSettings) -> Any:
    """Head outputs (numpy, one row per feature, in feature order) -> predictions per example."""

  @abc.abstractmethod
  def score(self, predictions: Any, examples: Sequence[Any], language: str) -> dict[str, float]:
    """Official metrics for one language (percentages, as XTREME reports)."""

  # ---- hooks with defaults ------------------------------------------------------------------------

  def featurize_examples(self, examples: Sequence[Any], ids: np.ndarray, tokenizer, settings: FeatureSettings
                         ) -> Features:
    """Features of `examples[ids]` alone (one process's shard of a training split), with
    `example_index` counting examples of the whole split. Default: `featurize` the subset. A task
    whose features depend on an example's position (MLM's masks) overrides it, so that a shard gets
    the rows the whole split would."""
    ids = np.asarray(ids, np.int64)
    features = self.featurize([examples[i] for i in ids], tokenizer, settings)
    return dataclasses.replace(features, example_index=ids[np.asarray(features.example_index, np.int64)])

  def join_predictions(self, parts: Sequence[Any], example_ids: Sequence[np.ndarray], examples: Sequence[Any]) -> Any:
    """The predictions of the whole split from `predict`'s outputs on parts of it (part k predicts the
    examples `example_ids[k]`, in that order; evaluation split over processes). Default: one
    prediction per example, put in example order; a part of the wrong length, or an example no part
    predicts, is an error. Parts that are numpy arrays join into one array."""
    arrays = bool(parts) and all(isinstance(p, np.ndarray) for p in parts)
    out = np.zeros((len(examples),) + parts[0].shape[1:], parts[0].dtype) if arrays else [None] * len(examples)
    seen = np.zeros(len(examples), bool)
    for k, (part, ids) in enumerate(zip(parts, example_ids)):
      if len(part) != len(ids):
        raise XtjaxError(f"task {self.name!r}: part {k} has {len(part)} predictions for {len(ids)} examples")
      for i, p in zip(ids, part):
        out[int(i)] = p
      seen[np.asarray(ids, np.int64)] = True
    missing = np.flatnonzero(~seen)
    if missing.size:
      raise XtjaxError(f"task {self.name!r}: no prediction for {missing.size} of {len(examples)} examples "
                       f"(the first: {missing[:5].tolist()})")
    return out

  def fingerprint(self) -> dict[str, Any]:
    """What besides the inputs changes this task's features (label vocabulary, options); part of the
    feature-cache key. Default: the task's name and class."""
    return {"task": self.name, "class": type(self).__qualname__}

  def source_files(self, split: str, language: str, source: Any) -> list[Path]:
    """Local files `read` opens for one split and language (their size and mtime key the feature
    cache). Default: a local source's one file; hub and TFDS sources are keyed by id."""
    if isinstance(source, DataSource) and source.kind == "local":
      return [local_path(source, split, language, self.name)]
    return []

  def export_state(self) -> dict[str, Any]:
    """State built from data while reading (e.g. CCG's label set), stored with cached features.
    Default: none."""
    return {}

  def restore_state(self, state: Mapping[str, Any]) -> None:
    """Restores `export_state()`'s output on a feature-cache hit. Default: only empty state."""
    if state:
      raise XtjaxError(f"task {self.name!r} keeps no state but was given {sorted(state)}")

  def stats(self, examples: Sequence[Any], features: Features) -> dict[str, Any]:
    """What `xtjax data stats` prints. Default: counts and truncation."""
    return basic_stats(examples, features)

  def submission_text(self, predictions: Sequence[Any], examples: Sequence[Any]) -> tuple[str, str]:
    """(file extension, text) of predictions in XTREME's submission layout. Default: one JSON
    value per line."""
    plain = (p.item() if isinstance(p, np.generic) else p for p in predictions)  # numpy scalars -> Python
    return "jsonl", "".join(json.dumps(p, default=str) + "\n" for p in plain)
