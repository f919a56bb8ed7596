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


def check_tensors(rules: Sequence[Rule], shapes: Mapping[str, Sequence[int]], ignore: Sequence[str],
                  where: str) -> list[str]:
  """The data-free half of `import_tensors`: every rule's tensor present with its shape, every other
  name ignored on purpose. Returns the ignored names; raises CheckpointError naming the first problem."""
  for r in rules:
    if r.hf not in shapes:
      raise CheckpointError(f"{where}: missing tensor {r.hf!r} (expected shape {list(r.hf_shape)})")
    if tuple(shapes[r.hf]) != tuple(r.hf_shape):
      raise CheckpointError(f"{where}: tensor {r.hf!r} has shape {list(shapes[r.hf])}, "
                            f"expected {list(r.hf_shape)}")
  used = {r.hf for r in rules}
  patterns = [re.compile(p) for p in ignore]
  ignored, unexpected = [], []
  for name in shapes:
    if name in used:
      continue
    (ignored if any(p.fullmatch(name) for p in patterns) else unexpected).append(name)
  if unexpected:
    more = f" and {len(unexpected) - 5} more" if len(unexpected) > 5 else ""
    raise CheckpointError(f"{where}: unexpected tensors {sorted(unexpected)[:5]}{more}")
  return sorted(ignored)


def convert(rule: Rule, tensor: Array, where: str) -> Array:
  """One checkpoint tensor in our layout."""
  v = np.asarray(rule.to_ours(tensor))
  if tuple(v.shape) != rule.shape:  # a bug in a rule, not in the checkpoint
    raise CheckpointError(f"{where}: tensor {rule.hf!r} maps to shape {list(v.shape)}, expected {list(rule.shape)}")
  return v


def import_tensors(rules: Sequence[Rule], tensors: Mapping[str, Array], ignore: Sequence[str],
                   where: str) -> tuple[dict, list[str]]:
  """Applies `rules` to a state dict. Returns (our nested params, names ignored on purpose)."""
  ignored = check_tensors(rules, {k: np.shape(v) for k, v in tensors.items()}, ignore, where)
  out: dict = {}
  for r in rules:
    _set(out, r.ours, convert(r, tensors[r.hf], where))
  return out, ignored


@dataclasses.dataclass(frozen=True)
class TensorPlan:
  """How a family reads one checkpoint, decided from its tensor names alone (so it can stream)."""

  rules: Sequence[Rule]  # tensor names as this checkpoint spells them
  ignore: Sequence[str] = ()  # regexes of names deliberately not used
  # (name, reference, hint): an ignored tensor that must equal the reference (a tied head's copy)
  equal: Sequence[tuple[str, str, str]] = ()


def check_equal(plan: TensorPlan, get: Callable[[str], Array], names, where: str) -> None:
  """Ignored copies must be copies: anything else would be weights silently dropped."""
  for name, ref, hint in plan.equal:
    if name in names and not np.array_equal(np.asarray(get(name)), np.asarray(get(ref))):
      raise CheckpointError(f"{where}: tensor {name!r} differs from {ref!r} but {hint}")


def import_plan(plan: TensorPlan, tensors: Mapping[str, Array], where: str) -> tuple[dict, list[str]]:
  """`import_tensors` for a plan (in memory; `hf_stream` streams the same plan onto a mesh)."""
  params, ignored = import_tensors(plan.rules, tensors, plan.ignore, where)
  check_equal(plan, tensors.__getitem__, tensors, where)
  return params, ignored


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
