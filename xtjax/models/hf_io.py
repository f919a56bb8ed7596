"""Reading and writing Hugging Face model folders (config.json + safetensors / pytorch_model.bin).

Safe loading only: safetensors first, `torch.load(weights_only=True)` otherwise; never
`trust_remote_code`. A hub id is resolved through the local Hugging Face cache, downloading only
when online.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from xtjax.errors import CheckpointError
from xtjax.io_utils import as_path, atomic_dir, is_remote, local_dir

log = logging.getLogger(__name__)

SAFE_SINGLE = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
BIN_SINGLE = "pytorch_model.bin"
BIN_INDEX = "pytorch_model.bin.index.json"
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "tokenizer*", "spiece.model",
                 "sentencepiece.bpe.model"]


def _offline() -> bool:
  return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def resolve(path_or_id: str | os.PathLike):
  """A local folder as is; a remote (gs://) xtjax model folder as is (Orbax reads it) and a remote Hugging
  Face folder downloaded (safetensors and tokenizers read local files); otherwise a hub id from the cache
  (downloaded when online)."""
  if is_remote(path_or_id):
    remote = as_path(path_or_id)
    if not remote.is_dir():
      raise CheckpointError(f"{remote}: no such model folder")
    return remote if (remote / "xtjax_model.json").exists() else local_dir(remote)  # store.MARKER
  p = Path(path_or_id).expanduser()
  if p.exists():
    if not p.is_dir():
      raise CheckpointError(f"{p}: expected a model folder, found a file")
    return p
  s = str(path_or_id)
  if s.startswith((".", "/", "~")) or s.count("/") > 1:
    raise CheckpointError(f"{s}: no such model folder")
  try:
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(s, allow_patterns=_HUB_PATTERNS, local_files_only=_offline()))
  except Exception as e:  # hub errors come in many types; the message is what the user needs
    mode = "offline (HF_HUB_OFFLINE=1) and it is not in the local Hugging Face cache" if _offline() else \
        f"it could not be fetched from the hub ({type(e).__name__}: {e})"
    raise CheckpointError(f"model {s!r} is not a local folder and {mode}") from e


def read_config(folder: Path) -> dict[str, Any]:
  path = folder / "config.json"
  if not path.exists():
    raise CheckpointError(f"{path}: missing (not a Hugging Face model folder)")
  try:
    cfg = json.loads(path.read_text())
  except json.JSONDecodeError as e:
    raise CheckpointError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from e
  if not isinstance(cfg, dict) or "model_type" not in cfg:
    raise CheckpointError(f"{path}: no 'model_type' key")
  return cfg


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
  from safetensors import safe_open

  try:
    with safe_open(str(path), framework="numpy") as f:
      return {k: f.get_tensor(k) for k in f.keys()}
  except Exception as e:
    raise CheckpointError(f"{path}: cannot read safetensors file ({e}); is it truncated or corrupt?") from e


def _read_bin(path: Path) -> dict[str, np.ndarray]:
  try:
    import torch
  except ImportError as e:
    raise CheckpointError(f"{path}: reading pytorch_model.bin needs torch; install it or convert the "
                          "checkpoint to safetensors") from e
  try:
    sd = torch.load(str(path), map_location="cpu", weights_only=True)
  except Exception as e:
    raise CheckpointError(f"{path}: cannot read ({type(e).__name__}: {e})") from e
  out = {}
  for k, v in sd.items():
    v = v.detach()
    if v.dtype == torch.bfloat16:
      import ml_dtypes

      out[k] = v.float().numpy().astype(ml_dtypes.bfloat16)
    else:
      out[k] = v.numpy()
  return out


def _read_index(folder: Path, index_name: str, reader) -> dict[str, np.ndarray]:
  index_path = folder / index_name
  try:
    weight_map = json.loads(index_path.read_text())["weight_map"]
  except (json.JSONDecodeError, KeyError) as e:
    raise CheckpointError(f"{index_path}: invalid index (needs a 'weight_map')") from e
  out: dict[str, np.ndarray] = {}
  for shard in sorted(set(weight_map.values())):
    shard_path = folder / shard
    if not shard_path.exists():
      raise CheckpointError(f"{index_path}: shard {shard!r} is missing")
    out.update(reader(shard_path))
  missing = sorted(set(weight_map) - set(out))
  if missing:
    raise CheckpointError(f"{index_path}: tensors {missing[:5]} are listed but absent from their shards")
  return out


def read_tensors(folder: Path) -> dict[str, np.ndarray]:
  """All tensors of a model folder: safetensors (single or sharded) first, then pytorch_model.bin."""
  if (folder / SAFE_SINGLE).exists():
    return _read_safetensors(folder / SAFE_SINGLE)
  if (folder / SAFE_INDEX).exists():
    return _read_index(folder, SAFE_INDEX, _read_safetensors)
  if (folder / BIN_SINGLE).exists():
    return _read_bin(folder / BIN_SINGLE)
  if (folder / BIN_INDEX).exists():
    return _read_index(folder, BIN_INDEX, _read_bin)
  raise CheckpointError(f"{folder}: no weights found (expected {SAFE_SINGLE}, {SAFE_INDEX}, {BIN_SINGLE} "
                        f"or {BIN_INDEX})")


def safetensors_files(folder: Path) -> dict[str, Path] | None:
  """tensor name -> the safetensors file holding it (single file or sharded index); None without safetensors."""
  if (folder / SAFE_SINGLE).exists():
    return {name: folder / SAFE_SINGLE for name in _safetensors_shapes(folder / SAFE_SINGLE)}
  if not (folder / SAFE_INDEX).exists():
    return None
  index_path = folder / SAFE_INDEX
  try:
    weight_map = json.loads(index_path.read_text())["weight_map"]
  except (json.JSONDecodeError, KeyError) as e:
    raise CheckpointError(f"{index_path}: invalid index (needs a 'weight_map')") from e
  for shard in sorted(set(weight_map.values())):
    if not (folder / shard).exists():
      raise CheckpointError(f"{index_path}: shard {shard!r} is missing")
  return {name: folder / shard for name, shard in weight_map.items()}


def _safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
  from safetensors import safe_open

  try:
    with safe_open(str(path), framework="numpy") as f:
      return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
  except Exception as e:
    raise CheckpointError(f"{path}: cannot read safetensors file ({e}); is it truncated or corrupt?") from e


def safetensors_shapes(files: dict[str, Path]) -> dict[str, tuple[int, ...]]:
  """Every tensor's shape, from the files' headers only (no tensor data is read)."""
  shapes: dict[str, tuple[int, ...]] = {}
  by_file: dict[Path, list[str]] = {}
  for name, path in files.items():
    by_file.setdefault(path, []).append(name)
  for path, names in by_file.items():
    in_file = _safetensors_shapes(path)
    absent = sorted(set(names) - set(in_file))
    if absent:
      raise CheckpointError(f"{path}: tensors {absent[:5]} are listed in the index but absent from this shard")
    shapes.update({n: in_file[n] for n in names})
  return shapes


def has_tokenizer(folder: Path) -> bool:
  return any((folder / n).exists() for n in ("tokenizer.json", "tokenizer_config.json", "vocab.txt",
                                             "sentencepiece.bpe.model", "spiece.model"))


def load_tokenizer(folder: Path):
  """The fast tokenizer saved in a model folder (no remote code).

  Decoder-only LLM tokenizers (Llama 3.x, Mistral) define no padding token: they get their EOS as
  one, said in the log. Padding is never read (attention masks decide, and last-token heads find the
  last attended token by the mask, not the pad id), and it is what the model's generation pads with.
  """
  from transformers import AutoTokenizer

  try:
    tok = AutoTokenizer.from_pretrained(str(local_dir(folder)), use_fast=True, trust_remote_code=False)
  except Exception as e:
    raise CheckpointError(f"{folder}: cannot load a tokenizer ({type(e).__name__}: {e})") from e
  if tok.pad_token is None and tok.eos_token is not None:
    log.info("%s: the tokenizer has no padding token; padding with its EOS %r (masked wherever it pads)", folder,
             tok.eos_token)
    tok.pad_token = tok.eos_token
  return tok


def write_folder(folder: Path, hf_config: dict, tensors: dict[str, np.ndarray], tokenizer_dir: Path | None) -> None:
  """Writes a Hugging Face folder atomically: config.json, model.safetensors and tokenizer files."""
  from safetensors.numpy import save_file

  with atomic_dir(folder, last="config.json") as tmp:
    (tmp / "config.json").write_text(json.dumps(hf_config, indent=2, sort_keys=True) + "\n")
    save_file(tensors, str(tmp / SAFE_SINGLE), metadata={"format": "pt"})
    if tokenizer_dir is not None and has_tokenizer(tokenizer_dir):
      load_tokenizer(tokenizer_dir).save_pretrained(str(tmp))
