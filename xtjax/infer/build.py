"""Serving-side model settings: the mesh, dtype overrides, parameter casts."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from xtjax.errors import ConfigError
from xtjax.models.layers import to_dtype
from xtjax.parallel.mesh import MeshConfig, make_mesh

DTYPE_ALIASES = {"bf16": "bfloat16", "f32": "float32", "fp32": "float32"}


def resolve_mesh(mesh: Mesh | MeshConfig | None) -> Mesh:
  """The mesh itself, or one built from a MeshConfig (default: every device, data-parallel)."""
  if isinstance(mesh, Mesh):
    return mesh
  return make_mesh(mesh or MeshConfig())


def dtype_name(dtype: str | None) -> str | None:
  if dtype is None:
    return None
  name = DTYPE_ALIASES.get(dtype, dtype)
  to_dtype(name)
  return name


def with_dtype(cfg, dtype: str | None):
  """The model config with its compute dtype replaced (None: unchanged)."""
  name = dtype_name(dtype)
  return cfg if name is None else dataclasses.replace(cfg, dtype=name)


def with_overrides(cfg, overrides: Mapping[str, Any] | None):
  if not overrides:
    return cfg
  try:
    return dataclasses.replace(cfg, **overrides)
  except (TypeError, ValueError) as e:
    raise ConfigError(f"model config override: {e}") from e


def cast_params(params, param_dtype: str | None):
  """Floating-point parameters stored as `param_dtype` (None: unchanged), e.g. bf16 for serving."""
  name = dtype_name(param_dtype)
  if name is None:
    return params
  dt = to_dtype(name)
  cast = lambda x: x.astype(dt) if jnp.issubdtype(x.dtype, jnp.floating) else x  # noqa: E731
  return jax.jit(lambda p: jax.tree.map(cast, p), donate_argnums=0)(params)
