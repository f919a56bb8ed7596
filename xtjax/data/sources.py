"""Where a task's data comes from: local upstream files, Hugging Face `datasets`, or TFDS.

A task's `read(split, language, source)` asks this module for either a local path (then parses
the upstream format with `xtjax.data.formats`) or an iterable of row dicts (hub / TFDS), which the
task converts to its records.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from xtjax.errors import DataError

# The hub's automatic parquet conversion of a script dataset: `{config}/{split}/0000.parquet`.
PARQUET_BRANCH = "refs/convert/parquet"


@dataclasses.dataclass(frozen=True)
class DataSource:
  """kind: `local` (upstream files), `hf` (datasets.load_dataset: hub id or local json/csv/parquet)
  or `tfds` (tensorflow_datasets.load by name and version).

  Local files are found by `files["<split>.<lang>"]`, then `files["<split>"]`, then `path` with
  `{split}` (renamed by `split_names`, e.g. dev -> val for XCOPA's files) and `{lang}` filled in.
  `hf_config` and `tfds_name` may also contain `{lang}`, filled with `language_names[lang]` when
  the source spells languages its own way (google/xtreme's `udpos.German`, `tatoeba.deu`).
  `split_names` renames our split names (train/dev/test) to the source's (e.g. dev -> validation).
  `hf_revision` pins a hub commit or branch (e.g. `refs/convert/parquet`).
  """

  kind: str = "local"
  path: str | None = None
  files: Mapping[str, str] = dataclasses.field(default_factory=dict)
  hf_id: str | None = None
  hf_config: str | None = None
  hf_revision: str | None = None
  tfds_name: str | None = None
  tfds_data_dir: str | None = None
  split_names: Mapping[str, str] = dataclasses.field(default_factory=dict)
  language_names: Mapping[str, str] = dataclasses.field(default_factory=dict)
  limit: int | None = None  # keep only the first N examples (smoke runs)

  def __post_init__(self):
    if self.kind not in ("local", "hf", "tfds"):
      raise ValueError(f"data source kind must be local, hf or tfds, got {self.kind!r}")

  def split_name(self, split: str) -> str:
    return self.split_names.get(split, split)

  def language_name(self, lang: str) -> str:
    return self.language_names.get(lang, lang)


def fill_pattern(pattern: str, split: str, lang: str) -> str:
  """`pattern` with `{split}` and `{lang}` filled in."""
  return pattern.replace("{split}", split).replace("{lang}", lang)


_fill = fill_pattern


def local_path(source: DataSource, split: str, lang: str, task: str = "") -> Path:
  """The local file (or folder) for one split and language; a clear error when it is missing."""
  key = f"{split}.{lang}"
  if key in source.files:
    pattern = source.files[key]
  elif split in source.files:
    pattern = source.files[split]
  elif source.path:
    pattern = source.path
  else:
    raise DataError(f"task {task!r}: no local file configured for split {split!r} language {lang!r} "
                    f"(set data.files.{split} or data.path)")
  p = Path(os.path.expanduser(_fill(pattern, source.split_name(split), lang)))
  if not p.exists():
    raise DataError(f"{p}: no such file (task {task!r}, split {split!r}, language {lang!r})")
  return p


def hf_rows(source: DataSource, split: str, lang: str, task: str = "") -> Iterator[dict[str, Any]]:
  """Rows of a Hugging Face dataset split (hub id, or a local json/csv/parquet builder)."""
  import datasets

  config = _fill(source.hf_config, split, source.language_name(lang)) if source.hf_config else None
  kwargs: dict[str, Any] = {"revision": source.hf_revision} if source.hf_revision else {}
  if source.hf_revision == PARQUET_BRANCH and config:  # one folder per config there, and no card
    kwargs["data_dir"], config = config, None
  if source.path:  # local files through a builder, e.g. hf_id: json, path: data/{split}.jsonl
    kwargs["data_files"] = {source.split_name(split): _fill(source.path, source.split_name(split), lang)}
  try:
    ds = datasets.load_dataset(source.hf_id, config, split=source.split_name(split), **kwargs)
  except Exception as e:  # datasets raises many types; the user needs the id and the reason
    offline = os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"
    why = "offline and not in the local datasets cache" if offline else f"{type(e).__name__}: {e}"
    at = f" revision {source.hf_revision!r}" if source.hf_revision else ""
    raise DataError(f"dataset {source.hf_id!r} config {config!r}{at} split {source.split_name(split)!r} "
                    f"(task {task!r}): cannot load ({why})") from e
  for i, row in enumerate(ds):
    if source.limit is not None and i >= source.limit:
      break
    yield row


def tfds_rows(source: DataSource, split: str, lang: str, task: str = "") -> Iterator[dict[str, Any]]:
  """Rows of a TFDS split as Python values (bytes decoded to str); needs the `tfds` extra."""
  try:
    import tensorflow_datasets as tfds
  except ImportError as e:
    raise DataError(f"task {task!r}: data.kind 'tfds' needs tensorflow-datasets (pip install 'xtjax[tfds]')") from e
  if not source.tfds_name:
    raise DataError(f"task {task!r}: data.kind 'tfds' needs data.tfds_name (this task has no TFDS default)")
  name = _fill(source.tfds_name, split, source.language_name(lang))
  tfds_split = source.split_name(split)
  try:
    ds = tfds.load(name, split=tfds_split, data_dir=source.tfds_data_dir)
  except Exception as e:
    raise DataError(f"tfds dataset {name!r} split {tfds_split!r} (task {task!r}): cannot load "
                    f"({type(e).__name__}: {e})") from e
  for i, row in enumerate(tfds.as_numpy(ds)):
    if source.limit is not None and i >= source.limit:
      break
    yield _decode(row)


def _decode(x):
  if isinstance(x, bytes):
    return x.decode("utf-8")
  if isinstance(x, Mapping):
    return {k: _decode(v) for k, v in x.items()}
  if hasattr(x, "tolist"):
    return _decode(x.tolist())
  if isinstance(x, list):
    return [_decode(v) for v in x]
  return x


@dataclasses.dataclass(frozen=True)
class HubDefaults:
  """Where a task's data lives on the hub / TFDS when the config names no dataset."""

  hf_id: str | None = None
  hf_config: str | None = None
  tfds_name: str | None = None
  split_names: Mapping[str, str] = dataclasses.field(default_factory=dict)
  tfds_split_names: Mapping[str, str] = dataclasses.field(default_factory=dict)
  # Hub data holding every language in one split, told apart by a language prefix of the id.
  id_prefixes: Mapping[str, str] = dataclasses.field(default_factory=dict)
  hf_revision: str | None = None
  language_names: Mapping[str, str] = dataclasses.field(default_factory=dict)


def with_hub_defaults(source: DataSource, hub: HubDefaults | None) -> DataSource:
  """`source` with the task's default hub id / config / TFDS name / split names filled in where unset."""
  if hub is None or source.kind == "local":
    return source
  changes: dict[str, Any] = {}
  if source.kind == "hf" and source.hf_id is None and hub.hf_id:
    changes.update(hf_id=hub.hf_id, hf_config=source.hf_config or hub.hf_config,
                   hf_revision=source.hf_revision or hub.hf_revision)
  if source.kind == "tfds" and source.tfds_name is None and hub.tfds_name:
    changes["tfds_name"] = hub.tfds_name
  if ("hf_id" in changes or "tfds_name" in changes) and not source.language_names and hub.language_names:
    changes["language_names"] = dict(hub.language_names)
  defaults = hub.split_names if source.kind == "hf" else hub.tfds_split_names
  if not source.split_names and defaults:
    changes["split_names"] = dict(defaults)
  return dataclasses.replace(source, **changes) if changes else source


def source_rows(source: DataSource, split: str, lang: str, task: str = "") -> tuple[Iterator[dict[str, Any]], str]:
  """(rows, where) of a hub or TFDS source; `where` names the dataset and split for error messages."""
  if source.kind == "hf":
    where = f"dataset {source.hf_id!r}" + (f" config {source.hf_config!r}" if source.hf_config else "")
    return hf_rows(source, split, lang, task), f"{where} split {source.split_name(split)!r}"
  if source.kind == "tfds":
    return tfds_rows(source, split, lang, task), f"tfds {source.tfds_name!r} split {source.split_name(split)!r}"
  raise ValueError(f"source_rows needs an hf or tfds source, got {source.kind!r}")
