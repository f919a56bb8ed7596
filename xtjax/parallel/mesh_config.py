"""The mesh's configuration (axis sizes), apart from building meshes (`parallel/mesh.py`) so a run's config
validates before JAX loads."""

from __future__ import annotations

import dataclasses
import math

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
