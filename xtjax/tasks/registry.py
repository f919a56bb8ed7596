"""One registry of tasks by name. A task family module registers its tasks at import."""

from __future__ import annotations

import difflib
import importlib

from xtjax.errors import ConfigError
from xtjax.tasks.base import Task

_TASKS: dict[str, Task] = {}

# Modules whose import registers tasks. Each must import: a typo or a broken module is an error.
TASK_MODULES = (
    "xtjax.tasks.classification",
    "xtjax.tasks.multiple_choice",
    "xtjax.tasks.qa",
    "xtjax.tasks.tagging",
    "xtjax.tasks.retrieval",
    "xtjax.tasks.mlm",
    "xtjax.tasks.synthetic",
    "xtjax.tasks.text_to_text",  # last: wraps the tasks above
)


def register(task: Task) -> Task:
  if task.name in _TASKS:
    raise ValueError(f"task {task.name!r} registered twice")
  _TASKS[task.name] = task
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
