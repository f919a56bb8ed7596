"""LoRA next to full fine-tuning: which projection weights get adapters, and folding them back in.

A run's `lora` config names the adapted weights by regexes over parameter paths
(`encoder/layers/\\d+/attention/(query|value)`); `attach` gives each a sibling `layers.LoraAdapter`
(`query` -> `query_lora/{a,b}`), so the base parameters keep their paths (Hugging Face mapping,
checkpoints, freezing rules) and the adapters are ordinary parameters with logical axes.
`merged` folds W + (alpha / rank) A B back into plain weights for export and for the next phase.

Why our own ~150 lines and not Google's `qwix.LoraProvider` (0.1.8): qwix creates the adapters
lazily by intercepting `jnp.einsum` / `dot_general` during a first forward pass, derives their
sharding from Flax's `sharding_names` metadata and draws adapter dropout from an `nnx.Rngs`
stream. xtjax builds models from shapes first (`eval_shape` -> shardings -> jitted init), shards
by its own `logical_axes` rules table, keeps every forward pass a pure function of an explicit
dropout key, and runs its projections through `layers.einsum`'s bf16 custom VJP, which qwix's
interception would bypass for the adapter product.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np
from flax import nnx

from xtjax.errors import ConfigError
from xtjax.models import layers as L
from xtjax.models.lora_config import LoraConfig  # noqa: F401 - the config lives apart: read before JAX loads
from xtjax.models.scan import LayerStack, stack_modules


def _path(path) -> str:
  return "/".join(str(p) for p in path)


def is_adapter_path(path: str) -> bool:
  """True for 'encoder/layers/0/attention/query_lora/a' and the like."""
  return any(part.endswith(L.LORA_SUFFIX) for part in path.split("/")[:-1])


_LAYER = re.compile(r"(?:^|/)layers/(\d+)/")


def _check_stacks(adapted: list[str], all_paths: list[str]) -> None:
  """Every layer of a stack gets the same adapters (scanned layers share one graph)."""

  def split(p):
    m = _LAYER.search(p)
    return (p[:m.start(1)], p[m.end(1):], int(m.group(1))) if m else None

  layers: dict[str, set[int]] = {}
  for stack, _, i in filter(None, map(split, all_paths)):
    layers.setdefault(stack, set()).add(i)
  got: dict[tuple[str, str], set[int]] = {}
  for stack, rest, i in filter(None, map(split, adapted)):
    got.setdefault((stack, rest), set()).add(i)
  for (stack, rest), have in sorted(got.items()):
    missing = sorted(layers[stack] - have)
    if missing:
      raise ConfigError(f"lora.targets: adapt {stack}<i>{rest} in every layer of the stack or in none "
                        f"(layers {missing} do not match)")


def _layer_paths(path: tuple, stacks: dict[tuple, LayerStack]) -> tuple[list[str], bool]:
  """(the per-layer paths a parameter stands for, whether it is stacked): `.../layers/stacked/REST` of a
  `LayerStack` is `.../layers/<i>/REST` for each stacked layer i (targets are written per layer)."""
  for stack_path, stack in stacks.items():
    n = len(stack_path)
    if path[:n] == stack_path and len(path) > n and path[n] == "stacked":
      first = len(stack.first)
      return [_path(stack_path + (i,) + path[n + 1:]) for i in range(first, first + stack.num_stacked)], True
  return [_path(path)], False


def _stacked_adapter(weight: nnx.Param, num_layers: int, cfg: LoraConfig, rngs) -> L.LoraAdapter:
  """An adapter for a stacked weight [layers, in..., out...]: one adapter per layer, built from that
  layer's slice, stacked along the same leading `layers` axis (so the layer scan slices it too)."""
  meta, value = weight.get_metadata(), weight.get_value()
  axes = meta.get("logical_axes")
  per_meta = {k: v for k, v in meta.items() if k != "logical_axes"}
  if axes is not None:
    per_meta["logical_axes"] = tuple(axes[1:])
  return stack_modules([L.LoraAdapter(nnx.Param(value[j], **per_meta), cfg.rank, cfg.alpha, cfg.dropout, rngs=rngs)
                        for j in range(num_layers)])


def attach(model: nnx.Module, cfg: LoraConfig, rngs) -> list[str]:
  """Gives every projection weight of `model` whose path matches `cfg.targets` a LoRA adapter;
  returns the adapted paths (per layer). A target matching nothing, or a weight that is no projection,
  is an error. Stacked layers (`models.scan.LayerStack`) are matched by their per-layer paths."""
  stacks = {tuple(path): node for path, node in nnx.iter_graph(model) if isinstance(node, LayerStack)}
  hits, used, all_paths = [], set(), []
  for path, node in nnx.iter_graph(model):
    if not isinstance(node, nnx.Param) or not path:
      continue
    per_layer, stacked = _layer_paths(tuple(path), stacks)
    all_paths.extend(per_layer)
    matched = sorted({t for t in cfg.targets for p in per_layer if re.fullmatch(t, p)})
    if not matched:
      continue
    p = per_layer[0]
    if stacked and not all(any(re.fullmatch(t, q) for t in cfg.targets) for q in per_layer):
      raise ConfigError(f"lora.targets: {matched[0]!r} matches only some of the stacked layers "
                        f"{per_layer[0]} .. {per_layer[-1]}; adapt every layer of the stack or none")
    used.update(matched)
    if "fan_in_dims" not in node.get_metadata():
      raise ConfigError(f"lora.targets {matched[0]!r} matches {p}, which is not a projection weight "
                        "(LoRA adapts weights created with fan_in_dims, e.g. attention and MLP kernels)")
    hits.append((path, node, per_layer, stacked))
  unused = [t for t in cfg.targets if t not in used]
  if unused:
    raise ConfigError(f"lora.targets {unused[0]!r} matches no parameter path (e.g. "
                      "'encoder/layers/\\d+/attention/(query|value)')")
  paths = [q for _, _, per_layer, _ in hits for q in per_layer]
  _check_stacks(paths, all_paths)
  rngs = L.KeySequence(rngs)
  for path, weight, per_layer, stacked in hits:
    owner = model
    for part in path[:-1]:
      owner = owner[part] if isinstance(part, int) else getattr(owner, part)
    adapter = (_stacked_adapter(weight, len(per_layer), cfg, rngs) if stacked
               else L.LoraAdapter(weight, cfg.rank, cfg.alpha, cfg.dropout, rngs=rngs))
    setattr(owner, path[-1] + L.LORA_SUFFIX, adapter)
  return paths


def has_adapters(pure: Mapping) -> bool:
  return any(k.endswith(L.LORA_SUFFIX) or (isinstance(v, Mapping) and has_adapters(v))
             for k, v in ((str(k), v) for k, v in pure.items()))


def adapters_only(pure: Mapping) -> dict:
  """The adapter subtrees of a pure params dict, nested as in the model (empty branches dropped)."""
  out = {}
  for k, v in pure.items():
    if str(k).endswith(L.LORA_SUFFIX):
      out[k] = v
    elif isinstance(v, Mapping):
      sub = adapters_only(v)
      if sub:
        out[k] = sub
  return out


def merged(pure: Mapping, alpha: float) -> dict:
  """A pure params dict with every adapter folded in: W + (alpha / rank) A B, computed in float32
  and cast to W's dtype; the `*_lora` entries are gone. Works on numpy or jax arrays."""
  out = {}
  for k, v in pure.items():
    if str(k).endswith(L.LORA_SUFFIX):
      continue
    if isinstance(v, Mapping):
      out[k] = merged(v, alpha)
      continue
    adapter = pure.get(f"{k}{L.LORA_SUFFIX}")
    if adapter is None:
      out[k] = v
      continue
    a, b = adapter["a"], adapter["b"]
    rank = a.shape[-1]
    xp = np if isinstance(v, np.ndarray) else jnp
    lead = v.shape[:a.ndim + b.ndim - 2 - v.ndim]  # (layers,) for a stacked weight, else ()
    a2 = xp.asarray(a, np.float32).reshape(*lead, -1, rank)
    b2 = xp.asarray(b, np.float32).reshape(*lead, rank, -1)
    delta = xp.reshape(a2 @ b2, v.shape)
    out[k] = (xp.asarray(v, np.float32) + (alpha / rank) * delta).astype(v.dtype)
  return out
