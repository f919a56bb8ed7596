"""The contract between tasks and the trainer / evaluator.

A task reads examples from its sources, featurises them with a tokenizer into fixed-length numpy
arrays, names the head it needs, and turns the head's outputs back into predictions and official
scores. The trainer only ever sees `Task`, `Features` and `FeatureSettings`.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class FeatureSettings:
  """Every setting that changes featurisation (and so the feature-cache key)."""

  max_length: int = 128
  doc_stride: int = 128  # QA: tokens of overlap between windows of a long context
  max_query_length: int = 64
  max_answer_length: int = 30  # QA post-processing
  n_best: int = 20  # QA post-processing
  max_target_length: int = 32  # text-to-text: target tokens (EOS included); inputs use max_length


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
