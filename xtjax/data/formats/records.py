"""Plain records that every upstream-format reader returns, and the reader result type.

Records hold text exactly as the upstream file has it (no tokenisation, no normalisation beyond
what the docstring of each reader states). Labels are strings, except multiple-choice labels,
which are 0-based indices into `choices`.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class ClassificationExample:
  """A sentence or sentence pair with a class label (NLI, paraphrase)."""

  guid: str
  text_a: str
  text_b: str | None
  label: str | None


@dataclasses.dataclass(frozen=True)
class MultipleChoiceExample:
  """A question with candidate answers; `label` is the index of the correct choice."""

  guid: str
  context: str | None
  question: str
  choices: tuple[str, ...]
  label: int | None


@dataclasses.dataclass(frozen=True)
class QAExample:
  """An extractive QA question; `answers` are (text, char_start) pairs into `context`."""

  guid: str
  question: str
  context: str
  answers: tuple[tuple[str, int], ...]
  is_impossible: bool


@dataclasses.dataclass(frozen=True)
class TaggingExample:
  """A tokenised sentence with one tag per token (None for unlabelled test files)."""

  guid: str
  tokens: tuple[str, ...]
  labels: tuple[str, ...] | None


@dataclasses.dataclass(frozen=True)
class ParallelPair:
  """A gold translation pair (Tatoeba): `target` translates `source`."""

  guid: str
  source: str
  target: str
  source_lang: str
  target_lang: str


@dataclasses.dataclass(frozen=True)
class RetrievalQuery:
  """Something to retrieve for: a BUCC source sentence, a LAReQA question, a Mewsli-X mention.

  `relevant` holds the guids of the correct candidates (empty when none is, as for most BUCC
  source sentences). For a mention, `text` is the mention and `span` its (start, end) in `context`.
  """

  guid: str
  language: str
  text: str
  relevant: tuple[str, ...]
  context: str | None = None
  span: tuple[int, int] | None = None


@dataclasses.dataclass(frozen=True)
class RetrievalCandidate:
  """One item of a retrieval pool: a sentence (with its paragraph) or an entity description."""

  guid: str
  language: str
  text: str
  context: str | None = None


@dataclasses.dataclass(frozen=True)
class ReadResult:
  """What every reader returns.

  examples: the records, in file order.
  skipped: records left out on purpose, by reason (every reason the reader knows, zeros included).
  counts: informational tallies (e.g. 'unanswerable', 'tokens').
  candidates: the retrieval pool, for retrieval formats; empty otherwise.
  """

  path: str
  examples: list[Any]
  skipped: dict[str, int] = dataclasses.field(default_factory=dict)
  counts: dict[str, int] = dataclasses.field(default_factory=dict)
  candidates: list[RetrievalCandidate] = dataclasses.field(default_factory=list)

  def __len__(self) -> int:
    return len(self.examples)

  def __iter__(self):
    return iter(self.examples)
