"""A run directory belongs to one fully resolved config: its hash, the keys two configs differ in, and the
check that refuses to reuse a run directory for a different config (unless overwriting)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from etils import epath

from xtjax.errors import ConfigError
from xtjax.io_utils import as_path
from xtjax.runs.schema import TrainConfig

log = logging.getLogger(__name__)


# Keys that say where and how a run is computed, not what it computes: a run resumes on another mesh
# (bit-identical on the same device count) or with another cache folder, checkpoint cadence, log rate or trackers.
PLACEMENT_KEYS = ("mesh", "cache_dir", "checkpoint", "log_every", "report_to")


def resolved(cfg: TrainConfig) -> dict:
  """The fully resolved config as plain data (every default filled in): what a run writes."""
  from xtjax import config as config_lib

  return config_lib.to_dict(cfg)


def _identity(resolved_config: Mapping[str, Any]) -> dict:
  return {k: v for k, v in resolved_config.items() if k not in PLACEMENT_KEYS}


def config_hash(resolved_config: Mapping[str, Any]) -> str:
  """sha256 (16 hex digits) of the canonical JSON of a resolved config, placement keys left out."""
  text = json.dumps(_identity(resolved_config), sort_keys=True, separators=(",", ":"), default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def differing_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
  """Dotted keys whose values differ (lists compared whole, `tasks` by position)."""
  if isinstance(old, Mapping) and isinstance(new, Mapping):
    out = []
    for k in sorted(set(old) | set(new), key=str):
      key = f"{prefix}.{k}" if prefix else str(k)
      out += differing_keys(old.get(k), new.get(k), key) if k in old and k in new else [key]
    return out
  if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
    return [k for i, (a, b) in enumerate(zip(old, new)) for k in differing_keys(a, b, f"{prefix}[{i}]")]
  return [] if old == new else [prefix or "<root>"]


def stored_config(run_dir: epath.PathLike) -> dict | None:
  """The resolved config of an existing run directory (None if it has no config.yaml)."""
  from xtjax import config as config_lib

  path = as_path(run_dir) / "config.yaml"
  if not path.exists():
    return None
  return resolved(config_lib.from_dict(TrainConfig, config_lib.read_yaml(path), str(path)))


def config_changes(run_dir: epath.PathLike, cfg: TrainConfig) -> list[str]:
  """Keys in which `cfg` differs from the config already in `run_dir` ([] when new or identical)."""
  old = stored_config(run_dir)
  return [] if old is None else differing_keys(_identity(old), _identity(resolved(cfg)))


def changed_config_error(run_dir: epath.PathLike, keys: list[str]) -> ConfigError:
  shown = ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")
  return ConfigError(f"{as_path(run_dir) / 'config.yaml'}: the run directory holds a different config "
                     f"(keys differ: {shown}); pass --overwrite to start it afresh, or choose another --workdir")


def claim_run_dir(run_dir: epath.PathLike, cfg: TrainConfig, overwrite: bool = False) -> None:
  """Refuses a run directory made for another config (before writing anything), or with `overwrite`
  deletes it so the run starts afresh."""
  keys = config_changes(run_dir, cfg)
  if not keys:
    return
  if not overwrite:
    raise changed_config_error(run_dir, keys)
  log.warning("%s: config changed (%s); --overwrite: deleting the previous run", run_dir, ", ".join(keys[:8]))
  discard_run(run_dir)


def discard_run(run_dir: epath.PathLike) -> None:
  """Deletes what a run directory holds but its lease (process 0 deletes, every process waits for it)."""
  import jax
  from jax.experimental import multihost_utils

  from xtjax.runs.lease import LEASE_FILE

  if jax.process_index() == 0 and as_path(run_dir).exists():
    for child in as_path(run_dir).iterdir():
      if child.name == LEASE_FILE:
        continue
      if child.is_dir():
        child.rmtree()
      else:
        child.unlink()
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f"xtjax:discard_run:{run_dir}")
