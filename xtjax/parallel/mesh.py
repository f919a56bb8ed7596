"""Device mesh construction from a config (`data`, `fsdp`, `tensor`, with -1 meaning 'the rest')."""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np
from jax.sharding import Mesh

from xtjax.errors import ConfigError

MESH_AXES = ("data", "fsdp", "tensor")


@dataclasses.dataclass(frozen=True)
class MeshConfig:
  data: int = -1
  fsdp: int = 1
  tensor: int = 1
  devices: int = -1  # use only the first N devices (-1: all); handy for tests and benchmarks
  # Slices (over the data-centre network) that the `data` axis spans: multi-slice training keeps
  # only data parallelism across slices, whose links are far slower than a slice's ICI.
  dcn_data: int = 1

  def resolve(self, n_devices: int) -> tuple[int, int, int]:
    sizes = [self.data, self.fsdp, self.tensor]
    free = [i for i, s in enumerate(sizes) if s == -1]
    if len(free) > 1:
      raise ConfigError(f"mesh: at most one axis may be -1, got {dict(zip(MESH_AXES, sizes))}")
    for name, s in zip(MESH_AXES, sizes):
      if s != -1 and s < 1:
        raise ConfigError(f"mesh.{name}: must be -1 or >= 1, got {s}")
    fixed = math.prod(s for s in sizes if s != -1)
    if free:
      if n_devices % fixed:
        raise ConfigError(f"mesh: {n_devices} devices are not divisible by {fixed} (fixed axes {dict(zip(MESH_AXES, sizes))})")
      sizes[free[0]] = n_devices // fixed
    if math.prod(sizes) != n_devices:
      raise ConfigError(f"mesh: {dict(zip(MESH_AXES, sizes))} needs {math.prod(sizes)} devices, have {n_devices}")
    return tuple(sizes)


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
