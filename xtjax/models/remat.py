"""Remat policies: what a layer's backward pass keeps from its forward pass (`jax.checkpoint` policies).

The layers name the activations a policy may keep (`jax.ad_checkpoint.checkpoint_name`, MaxText's names):
each projection's output (`query_proj`, `key_proj`, `value_proj`, `out_proj`, `mlpwi`/`mlpwi_0`/`mlpwi_1`,
`mlpwo`), the attention context that enters the output projection (`context`), and every product of an
activation with a weight (`weight_dot`, given by `layers.einsum`). The weight products run through a
`custom_vjp` (bf16 backward, `layers._lowp_einsum`) that XLA's dot-saving policies cannot see inside,
so `dots_saveable` and friends save `weight_dot` too: without it they recomputed every matmul.

`none` keeps everything, `full` recomputes each layer from its input; `minimal` keeps every projection
output (no matmul is recomputed, only the attention scores and element-wise work), `minimal_with_context`
the context as well; the `save_*` policies keep a subset (they recompute the rest); the `*offload*` ones
move what they keep to host memory (a TPU/GPU backend's `pinned_host`) instead of HBM.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from jax import checkpoint_policies as cp
from jax.ad_checkpoint import checkpoint_name

QUERY, KEY, VALUE, OUT = "query_proj", "key_proj", "value_proj", "out_proj"
CONTEXT = "context"
MLP_IN, MLP_IN_0, MLP_IN_1, MLP_OUT = "mlpwi", "mlpwi_0", "mlpwi_1", "mlpwo"
WEIGHT_DOT = "weight_dot"
QKV = (QUERY, KEY, VALUE)
PROJECTIONS = (*QKV, OUT, MLP_IN, MLP_IN_0, MLP_IN_1, MLP_OUT)
HOST = ("device", "pinned_host")  # where offloading policies move their saved activations from and to


def name(x, label: str | None):
  """`x` marked as the activation `label` for the policies (None: unnamed); an identity in the program."""
  return x if label is None else checkpoint_name(x, label)


def _saves(*names: str) -> Callable:
  return cp.save_only_these_names(*names)


def _offloads(*names: str) -> Callable:
  return cp.save_and_offload_only_these_names(names_which_can_be_saved=(), names_which_can_be_offloaded=names,
                                              offload_src=HOST[0], offload_dst=HOST[1])


@dataclasses.dataclass(frozen=True)
class Policy:
  """A remat choice: its `jax.checkpoint` policy (None: no checkpoint at all), the share of a layer's forward
  FLOPs it reruns in the backward pass (a Llama-shaped estimate for `plan --search`; `plan --remat-table`
  shows XLA's count), and whether it needs host memory."""

  policy: Callable | None
  recompute: float
  offloads: bool = False


POLICIES: dict[str, Policy] = {
    "none": Policy(None, 0.0),
    "full": Policy(cp.nothing_saveable, 1.0),
    "dots_saveable": Policy(cp.save_from_both_policies(cp.dots_saveable, _saves(WEIGHT_DOT)), 0.0),
    "dots_with_no_batch_dims_saveable": Policy(
        cp.save_from_both_policies(cp.dots_with_no_batch_dims_saveable, _saves(WEIGHT_DOT)), 0.0),
    "minimal": Policy(_saves(*PROJECTIONS), 0.0),
    "minimal_with_context": Policy(_saves(*PROJECTIONS, CONTEXT), 0.0),
    "save_dot_with_context_except_mlp": Policy(_saves(*QKV, CONTEXT, OUT), 0.8),
    "save_dot_except_mlpwi": Policy(_saves(*QKV, OUT, MLP_OUT), 0.55),
    "save_dot_except_mlp": Policy(_saves(*QKV, OUT), 0.8),
    "save_qkv_proj": Policy(_saves(*QKV), 0.85),
    "save_out_proj": Policy(_saves(OUT), 0.9),
    "offload": Policy(_offloads(WEIGHT_DOT), 0.0, offloads=True),
    "minimal_offloaded": Policy(_offloads(*PROJECTIONS), 0.0, offloads=True),
    "qkv_proj_offloaded": Policy(_offloads(*QKV), 0.85, offloads=True),
}
REMAT_CHOICES = tuple(POLICIES)


def check_remat(remat: str) -> str:
  if remat not in POLICIES:
    raise ValueError(f"remat must be one of {list(REMAT_CHOICES)}, got {remat!r}")
  return remat
