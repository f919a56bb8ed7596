"""Looking up a task's source row among the registered cards, and checking a config's sources
against the rows (offline: what the table says exists)."""

from __future__ import annotations

from xtjax.data.sources import DataSource, HubDefaults, with_hub_defaults
from xtjax.tasks import registry
from xtjax.tasks.source_table import ALL, SourceRow


def source_row(task: str) -> SourceRow:
  """The source row of a task or of a dataset a task reads as a component (ANLI+'s rounds)."""
  rows = registry.source_rows()
  if task not in rows:
    raise KeyError(f"no source row for task {task!r}; known: {sorted(rows)}")
  return rows[task]


def hub_defaults(task: str) -> HubDefaults:
  """The task's default hub / TFDS source (what `data: {kind: hf}` or `{kind: tfds}` reads)."""
  return source_row(task).hub_defaults()


def row_for_hub(hf_id: str, hf_config: str | None) -> SourceRow | None:
  """The table row of a hub dataset (id and config pattern), for checking a config's sources."""
  for row in registry.source_rows().values():
    if row.hf_id == hf_id and (hf_config is None or row.hf_config in (None, hf_config)):
      return row
  return None


def source_problem(task: str, source: DataSource, split: str, language: str) -> str | None:
  """Why `task` cannot read `split` in `language` from `source` (hub / TFDS, resolved against this
  table with the task's defaults), or None when the table says it exists. Local files are not
  checked here (they are read, and named when missing, at run time)."""
  if source.kind == "local":
    return None
  row = registry.source_rows().get(task)
  if row is not None and row.components:
    return next((why for c in row.components if (why := source_problem(c, source, split, language))), None)
  resolved = with_hub_defaults(source, row.hub_defaults() if row else None)
  if resolved.kind == "tfds":
    return None if resolved.tfds_name else f"task {task!r}: no TFDS default; set data.tfds_name"
  if resolved.hf_id is None:
    return f"task {task!r}: no hub default (manual or original-URL source: {row.url if row else '?'})"
  own = row is not None and (row.hf_id, row.hf_config) == (resolved.hf_id, resolved.hf_config)
  hub = row if own else row_for_hub(resolved.hf_id, resolved.hf_config)
  if hub is None:
    return f"task {task!r}: hub dataset {resolved.hf_id!r} config {resolved.hf_config!r} is not in the source table"
  hub_split = resolved.split_name(split)
  if hub_split not in hub.splits:
    return (f"task {task!r}: {resolved.hf_id} has no split {hub_split!r} (our {split!r}); it has "
            f"{sorted(hub.splits)}")
  held = hub.splits[hub_split]
  if language not in hub.languages or (held != ALL and language not in held):
    return f"task {task!r}: {resolved.hf_id} split {hub_split!r} holds no {language!r} data"
  return None
