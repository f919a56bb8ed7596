"""Tokenised features cached on disk: a second run with the same inputs skips reading and tokenising.

The key is a SHA-256 over: the cache format version; the task's name and `fingerprint()` (its
label vocabulary and anything else that changes features); split and language; the tokenizer's
identity (its serialised fast-tokenizer state, or vocabulary, and special tokens); every
`FeatureSettings` field; the data source's fields; and the size and modification time (ns) of
every local file the task reads (`task.source_files(split, language, source)`). Hub and TFDS
sources are keyed by id, config, split names and data dir (the datasets' own caches version the
content). Entries live in `{cache_dir}/{task}/{split}.{language}.{key}/` (entry.pkl: examples,
`Features` and task state; key.json: what was hashed) and are written atomically; an unreadable
entry is rebuilt. A process's part of a split (`cached_shard`: a training split in `xtjax.data.shards`'
batch shards, an evaluation split in `xtjax.evaluation.shares`' per-process shares) is an entry of its
own, `{split}.{language}.shards{a}-{b}of{S}.{key}/`, keyed by the shard layout too: one cache directory
serves every process count, each from its own entries. The cache never imports the
tasks: it stores what `read` and `featurize` return.

Tasks whose state is built from data (CCG's label set) return it from `export_state()`; it is
stored with the entry and handed to `restore_state(state)` on a hit (both hooks of `Task`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from etils import epath

from xtjax.data.shards import FeatureShard, ShardSpec
from xtjax.data.sources import DataSource, fill_pattern
from xtjax.errors import DataError, XtjaxError
from xtjax.io_utils import as_path, atomic_dir

log = logging.getLogger(__name__)

CACHE_FORMAT = 1


def tokenizer_identity(tokenizer) -> str:
  """SHA-256 of what determines a tokenizer's output: the fast tokenizer's full serialised state
  (normalizer, pre-tokenizer, model and vocabulary, post-processor, added tokens), else the
  vocabulary, plus the special tokens and padding / truncation sides."""
  h = hashlib.sha256(type(tokenizer).__name__.encode())
  backend = getattr(tokenizer, "backend_tokenizer", None)
  if backend is not None:
    state = json.loads(backend.to_str())
    # A call leaves its truncation / padding settings on the backend; they are per call, not identity.
    state.pop("truncation", None)
    state.pop("padding", None)
    h.update(json.dumps(state, sort_keys=True).encode())
  else:
    h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
  extra = {"special": getattr(tokenizer, "special_tokens_map", {}),
           "padding_side": getattr(tokenizer, "padding_side", None),
           "truncation_side": getattr(tokenizer, "truncation_side", None)}
  h.update(json.dumps(extra, sort_keys=True, default=str).encode())
  return h.hexdigest()


def _stat(path: Path) -> list:
  path = Path(path)
  if path.is_dir():
    return [[str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns]
            for p in sorted(path.rglob("*")) if p.is_file()]
  if not path.exists():
    return [str(path), None]
  st = path.stat()
  return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def _describe_source(source) -> Any:
  if isinstance(source, Mapping):
    return {k: _describe_source(v) for k, v in sorted(source.items())}
  if dataclasses.is_dataclass(source):
    return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in dataclasses.asdict(source).items()}
  return repr(source)


def _hub_files(source, split: str, language: str) -> list[Path]:
  """Local files a hub builder reads (`hf_id: json`, `path: data/{split}.jsonl`)."""
  if isinstance(source, DataSource) and source.kind == "hf" and source.path:
    return [Path(fill_pattern(source.path, source.split_name(split), language)).expanduser()]
  return []


def feature_key(task, split: str, language: str, source, tokenizer, settings, shard: ShardSpec | None = None
                ) -> tuple[str, dict]:
  """(hex digest, the JSON-able description it hashes); `shard`: one process's part of a training split."""
  files = list(task.source_files(split, language, source)) + _hub_files(source, split, language)
  description = {
      "format": CACHE_FORMAT,
      "task": task.fingerprint(),
      "split": split,
      "language": language,
      "tokenizer": tokenizer_identity(tokenizer),
      "settings": {k: v for k, v in dataclasses.asdict(settings).items() if k not in settings.AFTER_CACHE},
      "source": _describe_source(source),
      # The task's default hub / TFDS source (xtjax/tasks/source_table.py): a changed default is new data.
      "hub_defaults": _describe_source(task.hub),
      "files": [_stat(p) for p in files],
  }
  if shard is not None:
    description["shard"] = {"num_shards": shard.num_shards, "owned": [shard.owned.start, shard.owned.stop]}
  blob = json.dumps(description, sort_keys=True, default=str).encode()
  return hashlib.sha256(blob).hexdigest(), description


def read_examples(task, split: str, language: str, source):
  """`task.read`, refusing an empty result ("no examples for fr in FILE") before anything is featurised,
  predicted or cached: every task family, every command."""
  examples = task.read(split, language, source)
  if len(getattr(examples, "examples", examples)) == 0:
    raise DataError(f"no examples for {language} in {_source_name(task, split, language, source)} "
                    f"(task {task.name!r}, split {split!r})")
  return examples


def _source_name(task, split: str, language: str, source) -> str:
  files = list(task.source_files(split, language, source)) + _hub_files(source, split, language)
  if files:
    return ", ".join(str(p) for p in files)
  if isinstance(source, DataSource):
    name = source.hf_id or source.tfds_name or source.path
    return f"{name} ({source.split_name(split)})"
  return repr(source)


def entry_dir(cache_dir, task_name: str, split: str, language: str, key: str, shard: ShardSpec | None = None
              ) -> epath.Path:
  """The one place that names cache paths."""
  part = f".{shard.tag()}" if shard is not None else ""
  return as_path(cache_dir) / task_name / f"{split}.{language}{part}.{key[:24]}"


def cached_features(task, split: str, language: str, source, tokenizer, settings, cache_dir):
  """(examples, Features) of one split and language, from the cache or built and then cached."""
  key, description = feature_key(task, split, language, source, tokenizer, settings)
  folder = entry_dir(cache_dir, task.name, split, language, key)
  entry = _load(task, folder)
  if entry is not None:
    return entry["examples"], entry["features"]
  examples = read_examples(task, split, language, source)
  features = task.featurize(examples, tokenizer, settings)
  _store(task, folder, description, {"examples": examples, "features": features})
  log.info("task %s %s %s: %d examples -> %d features (cached in %s)", task.name, split, language, len(examples),
           len(features), folder)
  return examples, features


def cached_shard(task, split: str, language: str, source, tokenizer, settings, cache_dir, shard: ShardSpec,
                 examples=None) -> FeatureShard:
  """This process's part of a split (`xtjax.data.shards`; evaluation: `xtjax.evaluation.shares`): every
  example is read (a cache hit reads none; `examples`: already read), only those of the owned shards are
  featurised and cached. `cache_dir` None: no cache."""
  key, description = feature_key(task, split, language, source, tokenizer, settings, shard)
  folder = entry_dir(cache_dir, task.name, split, language, key, shard) if cache_dir is not None else None
  entry = _load(task, folder) if folder is not None else None
  if entry is None:
    examples = examples if examples is not None else read_examples(task, split, language, source)
    shard.check_every_process_has_examples(task.name, len(examples))
    ids = shard.example_ids(len(examples))
    entry = {"num_examples": len(examples), "features": task.featurize_examples(examples, ids, tokenizer, settings)}
    if folder is not None:
      _store(task, folder, description, entry)
    log.info("task %s %s %s %s: %d of %d examples -> %d features", task.name, split, language, shard.tag(), len(ids),
             len(examples), len(entry["features"]))
  return FeatureShard(task.name, entry["num_examples"], entry["features"], shard)


def _store(task, folder: epath.Path, description: dict, entry: dict) -> None:
  try:
    with atomic_dir(folder, last="entry.pkl") as tmp:
      with open(tmp / "entry.pkl", "wb") as f:
        pickle.dump(dict(entry, state=task.export_state()), f, protocol=pickle.HIGHEST_PROTOCOL)
      (tmp / "key.json").write_text(json.dumps(description, indent=1, sort_keys=True, default=str) + "\n")
  except OSError as e:  # a read-only or full disk must not stop a run: it only loses the cache
    log.warning("feature cache %s not written (%s)", folder, e)


def _load(task, folder: epath.Path) -> dict | None:
  """The entry in `folder` (its task state restored), or None when there is none or it is unreadable."""
  if not (folder / "entry.pkl").exists():
    return None
  try:
    with (folder / "entry.pkl").open("rb") as f:
      entry = pickle.load(f)
  except (OSError, ValueError, EOFError, AttributeError, pickle.UnpicklingError, KeyError) as e:
    log.warning("feature cache %s unreadable (%s: %s); rebuilding", folder, type(e).__name__, e)
    return None
  if entry.get("state"):
    try:
      task.restore_state(entry["state"])
    except XtjaxError as e:
      raise XtjaxError(f"{folder}: {e}") from e
  log.info("task %s: features from cache %s", task.name, folder)
  return entry
