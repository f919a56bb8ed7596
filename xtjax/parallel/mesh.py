"""Device mesh construction from a config (`data`, `fsdp`, `tensor`, with -1 meaning 'the rest')."""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh

from xtjax.errors import ConfigError
from xtjax.parallel.mesh_config import MESH_AXES, MeshConfig  # noqa: F401 - jax-free: configs read it before JAX loads


def make_mesh(cfg: MeshConfig | None = None, devices=None) -> Mesh:
  """Builds a Mesh over all (or the given) devices with axes (data, fsdp, tensor)."""
  cfg = cfg or MeshConfig()
  devices = list(devices if devices is not None else jax.devices())
  if cfg.devices != -1:
    if not 1 <= cfg.devices <= len(devices):
      raise ConfigError(f"mesh.devices: {cfg.devices} requested, {len(devices)} available")
    devices = devices[:cfg.devices]
  shape = cfg.resolve(len(devices))
  if cfg.dcn_data != 1:
    return Mesh(_hybrid(shape, cfg.dcn_data, devices), MESH_AXES)
  try:
    from jax.experimental import mesh_utils

    arr = mesh_utils.create_device_mesh(shape, devices=devices)
  except Exception:  # CPU fake devices or odd topologies: plain reshape.
    arr = np.asarray(devices).reshape(shape)
  return Mesh(arr, MESH_AXES)


def _hybrid(shape: tuple[int, int, int], slices: int, devices) -> np.ndarray:
  """data = slices x (data within a slice); fsdp and tensor stay inside a slice."""
  if slices < 1 or shape[0] % slices:
    raise ConfigError(f"mesh.dcn_data: {slices} slices must divide the data axis {shape[0]} (mesh {shape})")
  ici = (shape[0] // slices, shape[1], shape[2])
  if not hasattr(devices[0], "slice_index"):  # fake CPU devices: consecutive groups are the slices
    return np.asarray(devices).reshape((slices,) + ici).reshape(shape)
  from jax.experimental import mesh_utils

  return mesh_utils.create_hybrid_device_mesh(ici, (slices, 1, 1), devices=devices)


def single_device_mesh() -> Mesh:
  return make_mesh(MeshConfig(1, 1, 1, devices=1))
