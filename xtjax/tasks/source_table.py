"""Where a task's data comes from: the `SourceRow` record each task's card holds, and the checks of
a config's sources against those rows.

Each row names the Hugging Face hub parquet dataset (id, config pattern, revision, splits and the
languages each split holds), the TFDS name, the original upstream URL and the license. Tasks take
their default `hf_id` / `hf_config` / `tfds_name` from their row (`hub_defaults`); a config may still
override them. `verified` says how a row was checked (hub dataset card / commit, TFDS catalog).
The rows themselves sit with their tasks' registrations (`xtjax.tasks.card`); `source_check` looks
them up and checks a config's sources against them.

Hub ids are the canonical ones (no redirects) and every default is a parquet repository:
`datasets` >= 4 cannot run loading scripts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from xtjax.data.sources import HubDefaults

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
