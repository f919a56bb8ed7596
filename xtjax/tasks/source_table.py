"""Where a task's data comes from: the `SourceRow` record each task's card holds, and the checks of
a config's sources against those rows.

Each row names the Hugging Face hub parquet dataset (id, config pattern, revision, splits and the
languages each split holds), the TFDS name, the original upstream URL and the license. Tasks take
their default `hf_id` / `hf_config` / `tfds_name` from their row (`hub_defaults`); a config may still
override them. `verified` says how a row was checked (hub dataset card / commit, TFDS catalog).
The rows themselves sit with their tasks' registrations (`xtjax.tasks.card`).

Hub ids are the canonical ones (no redirects) and every default is a parquet repository:
`datasets` >= 4 cannot run loading scripts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from xtjax.data.sources import DataSource, HubDefaults, with_hub_defaults

EN = ("en",)
ALL = "*"  # every language of the row
XTREME_SHA = "google/xtreme parquet (Feb 2024 conversion by the hub, one folder per config)"


@dataclasses.dataclass(frozen=True)
class SourceRow:
  """One task's data source.

  splits: the hub's split names -> the languages (our codes) that split holds, or ALL.
  split_names / tfds_split_names: our split names (train/dev/test) -> the source's.
  language_names: our language code -> the token the source uses in `hf_config` / `tfds_name`.
  url: the original upstream files (what `data download` writes, and XTREME's own source).
  target / writer: the file `data download` writes a hub split to, in an upstream layout ({split},
  {lang}, {code}: the language's `language_names` token), and the writer that makes it; no target:
  the hub's rows as jsonl.
  """

  task: str
  languages: tuple[str, ...]
  hf_id: str | None = None
  hf_config: str | None = None
  hf_revision: str | None = None
  splits: Mapping[str, tuple[str, ...] | str] = dataclasses.field(default_factory=dict)
  split_names: Mapping[str, str] = dataclasses.field(default_factory=dict)
  language_names: Mapping[str, str] = dataclasses.field(default_factory=dict)
  id_prefixes: Mapping[str, str] = dataclasses.field(default_factory=dict)
  tfds_name: str | None = None
  tfds_split_names: Mapping[str, str] = dataclasses.field(default_factory=dict)
  url: str = ""
  license: str = ""
  manual: str = ""  # non-empty: the data cannot be redistributed; how to obtain it
  verified: str = ""
  components: tuple[str, ...] = ()  # a task read from several rows (ANLI+): those rows' tasks
  # Original files for benchmark languages the hub source lacks ({lang} / {code} filled in).
  fallback_url: str = ""
  target: str = ""
  writer: str = "jsonl"

  def hub_split(self, split: str) -> str:
    return self.split_names.get(split, split)

  def has(self, split: str, language: str) -> bool:
    """Whether the hub source holds `split` (our name) in `language`."""
    held = self.splits.get(self.hub_split(split))
    return held is not None and language in self.languages and (held == ALL or language in held)

  def hub_defaults(self) -> HubDefaults:
    return HubDefaults(self.hf_id, self.hf_config, self.tfds_name, dict(self.split_names),
                       dict(self.tfds_split_names), dict(self.id_prefixes), self.hf_revision,
                       dict(self.language_names))


DEV = {"dev": "validation"}
EVAL_ONLY = {"dev": "validation", "test": "validation"}
TVT = {"train": ALL, "validation": ALL, "test": ALL}
TV = {"train": ALL, "validation": ALL}


def source_row(task: str) -> SourceRow:
  """The source row of a task or of a dataset a task reads as a component (ANLI+'s rounds)."""
  from xtjax.tasks import registry

  rows = registry.source_rows()
  if task not in rows:
    raise KeyError(f"no source row for task {task!r}; known: {sorted(rows)}")
  return rows[task]


def hub_defaults(task: str) -> HubDefaults:
  """The task's default hub / TFDS source (what `data: {kind: hf}` or `{kind: tfds}` reads)."""
  return source_row(task).hub_defaults()


def row_for_hub(hf_id: str, hf_config: str | None) -> SourceRow | None:
  """The table row of a hub dataset (id and config pattern), for checking a config's sources."""
  from xtjax.tasks import registry

  for row in registry.source_rows().values():
    if row.hf_id == hf_id and (hf_config is None or row.hf_config in (None, hf_config)):
      return row
  return None


def source_problem(task: str, source: DataSource, split: str, language: str) -> str | None:
  """Why `task` cannot read `split` in `language` from `source` (hub / TFDS, resolved against this
  table with the task's defaults), or None when the table says it exists. Local files are not
  checked here (they are read, and named when missing, at run time)."""
  from xtjax.tasks import registry

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
