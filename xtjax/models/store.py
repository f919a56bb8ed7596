"""xtjax's own model folder: the converted weights (Orbax), the model config and the tokenizer.

Layout:  DIR/xtjax_model.json   {"format": "xtjax-model", "version": 1, "family", "config"}
         DIR/params/            Orbax PyTree checkpoint of the parameters (pure dict, per-layer layout:
                                stacked layers are unstacked on save, `models.scan`)
         DIR/tokenizer/         Hugging Face tokenizer files
Written atomically (temp folder, then rename).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
from flax import nnx

from xtjax.errors import CheckpointError
from xtjax.io_utils import atomic_dir
from xtjax.models import registry
from xtjax.models.scan import to_per_layer

MARKER = "xtjax_model.json"
FORMAT_VERSION = 1


def is_model_dir(path: Path) -> bool:
  return (Path(path) / MARKER).exists()


def save(folder: Path, family: registry.Family, cfg, state, tokenizer=None) -> Path:
  """Saves parameters (an nnx.State or pure dict) with their config and tokenizer."""
  import orbax.checkpoint as ocp

  folder = Path(folder).absolute()
  pure = to_per_layer(nnx.to_pure_dict(state) if isinstance(state, nnx.State) else state)
  with atomic_dir(folder) as tmp:
    meta = {"format": "xtjax-model", "version": FORMAT_VERSION, "family": family.name,
            "config": registry.config_to_dict(cfg)}
    (tmp / MARKER).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    # Written by the calling process alone (multi-host: process 0): a barrier with the others would hang.
    alone = ocp.options.MultiprocessingOptions(primary_host=jax.process_index(),
                                               active_processes={jax.process_index()})
    with ocp.StandardCheckpointer(multiprocessing_options=alone) as ckptr:
      ckptr.save(tmp / "params", _stringify_keys(pure))
    if tokenizer is not None:
      tokenizer.save_pretrained(str(tmp / "tokenizer"))
  return folder


def _stringify_keys(tree):
  # Orbax wants string keys; nnx.List indices are ints.
  if isinstance(tree, dict):
    return {str(k): _stringify_keys(v) for k, v in tree.items()}
  return tree


def _restore_keys(tree, like):
  if isinstance(like, dict):
    return {k: _restore_keys(tree[str(k)], v) for k, v in like.items()}
  return tree


def read_meta(folder: Path):
  path = Path(folder) / MARKER
  try:
    meta = json.loads(path.read_text())
  except (OSError, json.JSONDecodeError) as e:
    raise CheckpointError(f"{path}: unreadable ({e})") from e
  if meta.get("format") != "xtjax-model":
    raise CheckpointError(f"{path}: not an xtjax model folder (format={meta.get('format')!r})")
  if meta.get("version") != FORMAT_VERSION:
    raise CheckpointError(f"{path}: format version {meta.get('version')} not supported (expected {FORMAT_VERSION})")
  family = registry.get(meta["family"])
  cfg = registry.config_from_dict(family, meta["config"], where=f"{path} [config]")
  return family, cfg


def disk_config(cfg):
  """The config whose parameter layout a model folder holds: layers stored one by one."""
  return dataclasses.replace(cfg, scan_layers=False) if hasattr(cfg, "scan_layers") else cfg


def load_params(folder: Path, family: registry.Family, cfg, shardings_state):
  """Restores the parameters straight into the given shardings (an nnx.State of shardings of the model
  `disk_config(cfg)` builds)."""
  import orbax.checkpoint as ocp

  folder = Path(folder).absolute()
  sh = nnx.to_pure_dict(shardings_state)
  from xtjax.models.init import abstract

  _, abs_state = abstract(family, cfg)
  abs_pure = nnx.to_pure_dict(abs_state)
  target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abs_pure, sh)
  try:
    with ocp.StandardCheckpointer() as ckptr:
      restored = ckptr.restore(folder / "params", _stringify_keys(target))
  except Exception as e:
    raise CheckpointError(f"{folder / 'params'}: cannot restore ({type(e).__name__}: {str(e)[:300]})") from e
  return _restore_keys(restored, abs_pure)


def tokenizer_dir(folder: Path) -> Path | None:
  p = Path(folder) / "tokenizer"
  return p if p.exists() else None
