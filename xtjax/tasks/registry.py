"""One registry of tasks by name, each with its card. A task family module registers its tasks at import."""

from __future__ import annotations

import difflib
import importlib

from xtjax.errors import ConfigError
from xtjax.tasks.base import Task
from xtjax.tasks.card import TaskCard
from xtjax.tasks.source_table import SourceRow

_TASKS: dict[str, Task] = {}
_CARDS: dict[str, TaskCard] = {}
_RANK: dict[str, tuple[int, int]] = {}  # (module in TASK_MODULES, registration count): the cards' order

# Modules whose import registers tasks. Each must import: a typo or a broken module is an error. Their
# order, then the order of registration within a module, is the cards' order (a benchmark's tasks
# within a score group, Phang et al.'s intermediate tasks), whichever module is imported first.
TASK_MODULES = (
    "xtjax.tasks.classification",
    "xtjax.tasks.qa",
    "xtjax.tasks.multiple_choice",
    "xtjax.tasks.tagging",
    "xtjax.tasks.retrieval",
    "xtjax.tasks.mlm",
    "xtjax.tasks.synthetic",
    "xtjax.tasks.text_to_text",  # last: wraps the tasks above
)


def register(task: Task, card: TaskCard | None = None) -> Task:
  """Registers `task` with its card (default: a card with only the name: a task that wraps or
  synthesises data, read through another task's card or none)."""
  if task.name in _TASKS:
    raise ValueError(f"task {task.name!r} registered twice")
  card = card or TaskCard(task.name)
  if card.name != task.name:
    raise ValueError(f"task {task.name!r} registered with the card of {card.name!r}")
  _TASKS[task.name] = task
  _CARDS[task.name] = card
  module = type(task).__module__
  _RANK[task.name] = (TASK_MODULES.index(module) if module in TASK_MODULES else len(TASK_MODULES), len(_RANK))
  return task


def _ensure_loaded() -> None:
  for name in TASK_MODULES:
    importlib.import_module(name)


def get(name: str) -> Task:
  _ensure_loaded()
  if name not in _TASKS:
    raise ConfigError(f"unknown task {name!r}" + "".join(f"; did you mean {c!r}?" for c in difflib.get_close_matches(name, _TASKS, 1)) + f" (known tasks: {sorted(_TASKS)})")
  return _TASKS[name]


def names() -> list[str]:
  _ensure_loaded()
  return sorted(_TASKS)


def card(name: str) -> TaskCard:
  """The card of a registered task (a wrapper's own; `card(task.source_name)` for its data)."""
  get(name)
  return _CARDS[name]


def cards() -> list[TaskCard]:
  """Every task's card, in TASK_MODULES order, then registration order."""
  _ensure_loaded()
  return [_CARDS[name] for name in sorted(_CARDS, key=_RANK.__getitem__)]


def source_rows() -> dict[str, SourceRow]:
  """Every dataset's source row by name: the tasks' own and the components they read (ANLI+'s)."""
  rows: dict[str, SourceRow] = {}
  for c in cards():
    for row in (c.source, *c.parts):
      if row is not None:
        if rows.setdefault(row.task, row) is not row:
          raise ValueError(f"source row {row.task!r} given twice (task {c.name!r})")
  return rows
