"""One record per task: everything xtjax knows about a task besides its code.

A task module registers each task together with its `TaskCard` (`registry.register(task, card)`):
where the data comes from (`source`, and `parts` for datasets read only as components), the
benchmarks that score it (languages, English training data and score group, per benchmark),
whether it is one of Phang et al.'s intermediate tasks, its submission format and upstream
reference files, and its text-to-text form. Every table that used to be keyed by task name is a
view over the cards (`xtjax.tasks.xtreme`, `download_plan`, `submission`, `catalog`), so adding
a task is one registration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from xtjax.tasks.source_table import SourceRow
from xtjax.tasks.submission_formats import Submission


def langs(spec: str) -> tuple[str, ...]:
  """'ar,bg,de' -> ('ar', 'bg', 'de')."""
  return tuple(spec.split(","))


@dataclasses.dataclass(frozen=True)
class Form:
  """How one task reads and writes text. `parse(text, example)` returns the base task's prediction
  for the example (None when the text is outside what the target can be)."""

  source: str
  to_text: Callable[[Any], tuple[str, str]]
  parse: Callable[[str, Any], Any]


@dataclasses.dataclass(frozen=True)
class BenchmarkEntry:
  """A task as one benchmark evaluates it.

  languages: the evaluation languages (zero-shot from English). train: the English tasks fine-tuned
  on first, in order (the task's own name: its English training split; (): the pretrained encoder
  as is). group: the benchmark's score group the task is averaged into.
  """

  languages: tuple[str, ...]
  train: tuple[str, ...]
  group: str


@dataclasses.dataclass(frozen=True)
class TaskCard:
  """What xtjax knows about one task (see the module docstring).

  score_metrics: the metrics averaged into the task's benchmark score (XTREME's evaluate.py takes
  the mean of exact match and F1 for QA). The published example counts are the task's rows of
  `published_counts.tsv` (`xtjax.tasks.counts.published_counts`).
  """

  name: str
  source: SourceRow | None = None
  parts: tuple[SourceRow, ...] = ()  # datasets read only as components of this task (ANLI+'s rounds, SNLI)
  benchmarks: Mapping[str, BenchmarkEntry] = dataclasses.field(default_factory=dict)
  intermediate: bool = False  # one of Phang et al. (2020)'s English intermediate tasks
  score_metrics: tuple[str, ...] = ()
  submission: Submission | None = None
  text_to_text: Form | None = None

  def __post_init__(self):
    if self.source is not None and self.source.task != self.name:
      raise ValueError(f"task {self.name!r}: its source row is for {self.source.task!r}")
    if self.benchmarks and not (self.submission and self.score_metrics):
      raise ValueError(f"task {self.name!r}: a benchmark task needs a submission format and score metrics")
