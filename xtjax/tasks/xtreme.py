"""The XTREME and XTREME-R benchmarks and Phang et al. (2020)'s intermediate tasks, as views over the
task cards (`xtjax.tasks.card`): a task belongs to a benchmark when its card has an entry for it.

Language lists follow google-research/xtreme: `evaluate.py`'s TASK2LANGS for XTREME (Hu et al.,
2020), and for XTREME-R (Ruder et al., 2021) the lists in `scripts/download_data.sh`,
`scripts/train_xcopa.sh`, `scripts/run_tatoeba.sh` and `third_party/utils_mewslix.py`; each sits
with its task's registration. Every task is zero-shot: trained on English data (`train`, in order),
evaluated on `languages`. XTREME-R drops PAWS-X and BUCC, adds XCOPA, Mewsli-X and LAReQA, extends
UD-POS (UD v2.7), PAN-X and Tatoeba, and evaluates Tatoeba with the SQuAD-fine-tuned model.
"""

from __future__ import annotations

import dataclasses

from xtjax.tasks import registry
from xtjax.tasks.card import TaskCard

# Each benchmark's score groups in the papers' order; a benchmark's tasks are listed group by group,
# in registration order within a group.
GROUPS = {
    "xtreme": ("classification", "tagging", "qa", "retrieval"),
    "xtreme-r": ("classification", "structured_prediction", "qa", "retrieval"),
}
BENCHMARKS = tuple(GROUPS)


@dataclasses.dataclass(frozen=True)
class BenchmarkTask:
  """One task of one benchmark (from its card's entry): see `xtjax.tasks.card.BenchmarkEntry`."""

  name: str
  languages: tuple[str, ...]
  train: tuple[str, ...]
  group: str


def benchmark_tasks(name: str) -> dict[str, BenchmarkTask]:
  """The tasks that make up a benchmark's score, by task name ('xtreme' or 'xtreme-r')."""
  if name not in GROUPS:
    raise ValueError(f"unknown benchmark {name!r}; choose one of {sorted(GROUPS)}")
  tasks = []
  for card in registry.cards():
    entry = card.benchmarks.get(name)
    if entry is not None:
      if entry.group not in GROUPS[name]:
        raise ValueError(f"task {card.name!r}: {name} has no score group {entry.group!r}; "
                         f"its groups: {list(GROUPS[name])}")
      tasks.append(BenchmarkTask(card.name, entry.languages, entry.train, entry.group))
  tasks.sort(key=lambda t: GROUPS[name].index(t.group))  # stable: registration order within a group
  return {t.name: t for t in tasks}


def benchmark_groups(name: str) -> dict[str, tuple[str, ...]]:
  """A benchmark's score groups -> their tasks (groups without a task left out)."""
  tasks = benchmark_tasks(name).values()
  groups = {g: tuple(t.name for t in tasks if t.group == g) for g in GROUPS[name]}
  return {g: members for g, members in groups.items() if members}


def benchmark_languages(name: str) -> tuple[str, ...]:
  """All languages a benchmark covers, sorted (40 for XTREME, 50 for XTREME-R)."""
  return tuple(sorted({lang for task in benchmark_tasks(name).values() for lang in task.languages}))


def intermediate_tasks() -> dict[str, TaskCard]:
  """Phang et al. (2020)'s nine English intermediate tasks ("English intermediate-task training
  improves zero-shot cross-lingual transfer too"), by name, in registration order."""
  return {card.name: card for card in registry.cards() if card.intermediate}
