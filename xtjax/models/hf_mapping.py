"""Strict tensor mapping between Hugging Face state dicts and our nested parameter dicts.

Every checkpoint tensor is either used by exactly one rule or matched by an explicit ignore
pattern; anything missing, unexpected or mis-shaped is a CheckpointError naming the tensor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from xtjax.errors import CheckpointError

Array = np.ndarray


@contextlib.contextmanager
def hf_config_errors(model_type):
  """Turns a missing key or a rejected value while reading config.json into a CheckpointError."""
  try:
    yield
  except KeyError as e:
    raise CheckpointError(f"config.json: missing key {e.args[0]!r} for model_type {model_type!r}") from e
  except ValueError as e:
    raise CheckpointError(f"config.json: {e}") from e


def _identity(x):
  return x


@dataclasses.dataclass(frozen=True)
class Rule:
  ours: tuple  # path into our pure params dict, e.g. ("layers", 0, "attention", "query")
  hf: str  # Hugging Face tensor name (without the model prefix)
  shape: tuple[int, ...]  # our shape
  hf_shape: tuple[int, ...]  # checkpoint shape
  to_ours: Callable[[Array], Array] = _identity
  to_hf: Callable[[Array], Array] = _identity


def linear(ours: tuple, hf: str, d_in: int, d_out: int) -> Rule:
  """torch Linear weight [out, in] <-> our kernel [in, out]."""
  return Rule(ours, hf, (d_in, d_out), (d_out, d_in), lambda w: w.T, lambda k: k.T)


def copy(ours: tuple, hf: str, shape: Sequence[int]) -> Rule:
  return Rule(ours, hf, tuple(shape), tuple(shape))


def _set(tree: dict, path: tuple, value):
  for p in path[:-1]:
    tree = tree.setdefault(p, {})
  tree[path[-1]] = value


def _get(tree, path: tuple):
  for p in path:
    tree = tree[p]
  return tree


def strip_prefix(tensors: Mapping[str, Array], anchor: str, prefixes: Iterable[str], where: str) -> dict[str, Array]:
  """Removes a head model's prefix (e.g. 'roberta.') found by locating the `anchor` tensor."""
  if anchor in tensors:
    return dict(tensors)
  for prefix in prefixes:
    if prefix + anchor in tensors:
      return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in tensors.items()}
  raise CheckpointError(f"{where}: tensor {anchor!r} not found (also tried prefixes {list(prefixes)}); "
                        "is this checkpoint of the architecture its config.json names?")


def import_tensors(rules: Sequence[Rule], tensors: Mapping[str, Array], ignore: Sequence[str],
                   where: str) -> tuple[dict, list[str]]:
  """Applies `rules` to a state dict. Returns (our nested params, names ignored on purpose)."""
  out: dict = {}
  used = set()
  for r in rules:
    if r.hf not in tensors:
      raise CheckpointError(f"{where}: missing tensor {r.hf!r} (expected shape {list(r.hf_shape)})")
    t = tensors[r.hf]
    if tuple(t.shape) != tuple(r.hf_shape):
      raise CheckpointError(f"{where}: tensor {r.hf!r} has shape {list(t.shape)}, "
                            f"expected {list(r.hf_shape)}")
    v = np.asarray(r.to_ours(t))
    if tuple(v.shape) != r.shape:  # a bug in a rule, not in the checkpoint
      raise CheckpointError(f"{where}: tensor {r.hf!r} maps to shape {list(v.shape)}, expected {list(r.shape)}")
    _set(out, r.ours, v)
    used.add(r.hf)
  patterns = [re.compile(p) for p in ignore]
  ignored, unexpected = [], []
  for name in tensors:
    if name in used:
      continue
    (ignored if any(p.fullmatch(name) for p in patterns) else unexpected).append(name)
  if unexpected:
    more = f" and {len(unexpected) - 5} more" if len(unexpected) > 5 else ""
    raise CheckpointError(f"{where}: unexpected tensors {sorted(unexpected)[:5]}{more}")
  return out, sorted(ignored)


def export_tensors(rules: Sequence[Rule], params: Mapping) -> dict[str, Array]:
  """Inverse of import_tensors: our nested params -> Hugging Face state dict (contiguous f32/bf16)."""
  out = {}
  for r in rules:
    try:
      v = np.asarray(_get(params, r.ours))
    except (KeyError, IndexError, TypeError) as e:
      raise CheckpointError(f"parameter {'/'.join(map(str, r.ours))} missing from the model") from e
    if tuple(v.shape) != r.shape:
      raise CheckpointError(f"parameter {'/'.join(map(str, r.ours))} has shape {list(v.shape)}, expected {list(r.shape)}")
    out[r.hf] = np.ascontiguousarray(r.to_hf(v))
  return out
