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
  try:
    from jax.experimental import mesh_utils

    arr = mesh_utils.create_device_mesh(shape, devices=devices)
  except Exception:  # CPU fake devices or odd topologies: plain reshape.
    arr = np.asarray(devices).reshape(shape)
  return Mesh(arr, MESH_AXES)


def single_device_mesh() -> Mesh:
  return make_mesh(MeshConfig(1, 1, 1, devices=1))
