"""xtjax's own model folder: the converted weights (Orbax), the model config and the tokenizer.

Layout:  DIR/xtjax_model.json   {"format": "xtjax-model", "version": 1, "family", "config"}
         DIR/params/            Orbax PyTree checkpoint of the parameters (pure dict, per-layer layout:
                                stacked layers are unstacked on save, `models.scan`)
         DIR/tokenizer/         Hugging Face tokenizer files
Written atomically (temp folder, then rename; on an object store the marker is written last).
"""

from __future__ import annotations

import json

import jax
import numpy as np
from etils import epath
from flax import nnx

from xtjax.errors import CheckpointError
from xtjax.io_utils import as_path, atomic_dir, run_path
from xtjax.models import registry
from xtjax.models.scan import to_per_layer

MARKER = "xtjax_model.json"
FORMAT_VERSION = 1
ADAPTERS_MARKER = "lora.json"  # DIR/lora.json {"format": "xtjax-lora", "lora", "base"} and DIR/params/


def is_model_dir(path: epath.PathLike) -> bool:
  return (as_path(path) / MARKER).exists()


def save(folder: epath.PathLike, family: registry.Family, cfg, state, tokenizer=None) -> epath.Path:
  """Saves parameters (an nnx.State or pure dict) with their config and tokenizer."""
  folder = run_path(folder)
  pure = to_per_layer(nnx.to_pure_dict(state) if isinstance(state, nnx.State) else state)
  with atomic_dir(folder, last=MARKER) as tmp:
    meta = {"format": "xtjax-model", "version": FORMAT_VERSION, "family": family.name,
            "config": registry.config_to_dict(cfg)}
    (tmp / MARKER).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    _save_tree(tmp / "params", pure)
    if tokenizer is not None:
      tokenizer.save_pretrained(str(tmp / "tokenizer"))
  return folder


def _save_tree(path: epath.Path, pure) -> None:
  import orbax.checkpoint as ocp

  # Written by the calling process alone (multi-host: process 0): a barrier with the others would hang.
  alone = ocp.options.MultiprocessingOptions(primary_host=jax.process_index(), active_processes={jax.process_index()})
  with ocp.StandardCheckpointer(multiprocessing_options=alone) as ckptr:
    ckptr.save(path, _stringify_keys(pure))


def save_adapters(folder: epath.PathLike, adapters, lora: dict, base: dict) -> epath.Path:
  """A LoRA run's adapters (pure dict rooted like the TaskModel), its lora config and the source of the
  base weights they were trained on (what `init_from_lora: adapters` starts from)."""
  folder = run_path(folder)
  with atomic_dir(folder, last=ADAPTERS_MARKER) as tmp:
    meta = {"format": "xtjax-lora", "version": FORMAT_VERSION, "lora": lora, "base": base}
    (tmp / ADAPTERS_MARKER).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    _save_tree(tmp / "params", adapters)
  return folder


def read_adapters_meta(folder: epath.PathLike) -> dict:
  path = as_path(folder) / ADAPTERS_MARKER
  try:
    meta = json.loads(path.read_text())
  except (OSError, json.JSONDecodeError) as e:
    raise CheckpointError(f"{path}: unreadable ({e})") from e
  if meta.get("format") != "xtjax-lora" or meta.get("version") != FORMAT_VERSION:
    raise CheckpointError(f"{path}: not an xtjax LoRA adapters folder (format {meta.get('format')!r}, "
                          f"version {meta.get('version')!r})")
  return meta


def load_adapters(folder: epath.PathLike) -> dict:
  """The adapters saved by `save_adapters` as a pure dict of host arrays (string keys)."""
  import orbax.checkpoint as ocp

  folder = run_path(folder)
  try:
    with ocp.StandardCheckpointer() as ckptr:
      return jax.tree.map(np.asarray, ckptr.restore(folder / "params"))
  except Exception as e:
    raise CheckpointError(f"{folder / 'params'}: cannot restore ({type(e).__name__}: {str(e)[:300]})") from e


def _stringify_keys(tree):
  # Orbax wants string keys; nnx.List indices are ints.
  if isinstance(tree, dict):
    return {str(k): _stringify_keys(v) for k, v in tree.items()}
  return tree


def _restore_keys(tree, like):
  if isinstance(like, dict):
    return {k: _restore_keys(tree[str(k)], v) for k, v in like.items()}
  return tree


def read_meta(folder: epath.PathLike):
  path = as_path(folder) / MARKER
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
  return cfg.disk_config()


def load_params(folder: epath.PathLike, family: registry.Family, cfg, shardings_state, saved=None):
  """Restores the parameters straight into the given shardings (an nnx.State of shardings of the model
  `disk_config(cfg)` builds). `saved`: the config the folder was saved with, when `cfg` leaves out part of it
  (`ModelConfig.for_heads`): that part, and nothing else, is skipped unread."""
  import orbax.checkpoint as ocp

  folder = run_path(folder)
  sh = nnx.to_pure_dict(shardings_state)
  from xtjax.models.init import abstract

  _, abs_state = abstract(family, cfg)
  abs_pure = nnx.to_pure_dict(abs_state)
  target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abs_pure, sh)
  try:
    if saved is None or saved == cfg:
      with ocp.StandardCheckpointer() as ckptr:
        restored = ckptr.restore(folder / "params", _stringify_keys(target))
    else:
      restored = _restore_part(folder / "params", _stringify_keys(target),
                               _stringify_keys(nnx.to_pure_dict(abstract(family, saved)[1])))
  except Exception as e:
    raise CheckpointError(f"{folder / 'params'}: cannot restore ({type(e).__name__}: {str(e)[:300]})") from e
  return _restore_keys(restored, abs_pure)


def _restore_part(path, target: dict, saved: dict) -> dict:
  """`target`, a part of the `saved` tree, restored with the rest of `saved` named as left out (Orbax's
  placeholders): any other difference between the folder and `saved` still fails the restore."""
  import orbax.checkpoint as ocp

  def item(want, have):
    if isinstance(have, dict):
      return {k: item(want.get(k, {}) if isinstance(want, dict) else {}, v) for k, v in have.items()}
    return want if isinstance(want, jax.ShapeDtypeStruct) else ocp.PLACEHOLDER

  tree = item(target, saved)
  leaf = lambda x: x is ocp.PLACEHOLDER
  args = jax.tree.map(lambda x: x if leaf(x) else ocp.ArrayRestoreArgs(sharding=x.sharding, global_shape=x.shape,
                                                                       dtype=x.dtype), tree, is_leaf=leaf)
  with ocp.PyTreeCheckpointer() as ckptr:
    restored = ckptr.restore(path, args=ocp.args.PyTreeRestore(item=tree, restore_args=args))

  def keep(want, got):
    return {k: keep(v, got[k]) for k, v in want.items()} if isinstance(want, dict) else got

  return keep(target, restored)


def tokenizer_dir(folder: epath.PathLike) -> epath.Path | None:
  p = as_path(folder) / "tokenizer"
  return p if p.exists() else None
