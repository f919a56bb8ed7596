"""Described accelerator slices: devices to compile for without owning them, HBM and peak FLOP/s.

`v4-32`, `v5p-128` (TensorCores, two per megacore chip), `v5e-256`, `v6e-64` (chips) and explicit
`v4:2x2x4` become libtpu topology descriptions (what MaxText's `train_compile.py` compiles for);
`cpu:N` is N fake CPU devices, so the whole plan runs where libtpu does not; `on_cpu` lays a TPU
slice's devices out on as many CPU devices (same mesh, same bytes per device), which is all
`plan --memory-only` needs.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re

import jax
import numpy as np

from xtjax.errors import ConfigError, XtjaxError

LIBTPU_MISSING = "install the tpu extra (pip install 'xtjax[tpu]')"


@dataclasses.dataclass(frozen=True)
class Chip:
  """Per-device HBM and dense bf16 peak of one generation (a megacore chip is one JAX device)."""

  generation: str  # the libtpu topology prefix: v4, v5, v5e, v6e
  hbm_bytes: int
  peak_bf16: float
  dims: int  # torus dimensions of a slice's chip grid
  cores_per_chip: int  # what the public slice name counts (v4-8 = 4 chips of 2 cores)
  source: str
  ici_bytes_per_second: float = 0.0  # "Interchip Interconnect BW" per chip (same pages), for `plan --search`


GiB = 1024 ** 3
CHIPS_PER_HOST = 4  # a TPU VM host of v4 / v5p (and the multi-host v5e / v6e slices) drives 4 chips
CHIPS = {
    "v4": Chip("v4", 32 * GiB, 275e12, 3, 2,
                 "cloud.google.com/tpu/docs/v4: 32 GiB HBM2, 275 TFLOP/s bf16, ICI 2,400 Gbps per chip", 300e9),
    "v5p": Chip("v5", 95 * GiB, 459e12, 3, 2,
                 "cloud.google.com/tpu/docs/v5p: 95 GiB HBM2e, 459 TFLOP/s bf16, ICI 4,800 Gbps per chip", 600e9),
    "v5e": Chip("v5e", 16 * GiB, 197e12, 2, 1,
                 "cloud.google.com/tpu/docs/v5e: 16 GiB HBM2, 197 TFLOP/s bf16, ICI 1,600 Gbps per chip", 200e9),
    "v6e": Chip("v6e", 32 * GiB, 918e12, 2, 1,
                 "cloud.google.com/tpu/docs/v6e: 32 GiB HBM, 918 TFLOP/s bf16, ICI 3,584 Gbps per chip", 448e9),
}


@dataclasses.dataclass(frozen=True)
class Slice:
  name: str  # as given: v4-32, cpu:8, ...
  chip: Chip | None  # None for cpu:N (no HBM limit to check against)
  grid: tuple[int, ...]  # chips per torus dimension (cpu: (N,))
  num_slices: int = 1
  on_cpu: bool = False  # CPU stand-ins for the slice's devices: shardings and sizes, nothing compiled for TPU

  @property
  def devices_per_slice(self) -> int:
    return math.prod(self.grid)

  @property
  def hosts(self) -> int:
    """TPU VM hosts of all slices (4 chips per host, as `devices` describes them to libtpu; cpu:N is one)."""
    if self.chip is None:
      return 1
    return max(1, self.devices_per_slice // CHIPS_PER_HOST) * self.num_slices

  @property
  def topology_name(self) -> str:
    return f"{self.chip.generation}:{'x'.join(map(str, self.grid))}"


def _grid(chips: int, dims: int, where: str) -> tuple[int, ...]:
  """The chip grid Cloud TPU uses for a power-of-two slice (2x2x1, 2x2x2, 2x2x4, 2x4x4, 4x4x4, ...)."""
  if chips == 1:
    return (1,) * dims
  if chips < 4 or chips & (chips - 1):
    raise ConfigError(f"--topology {where}: {chips} chips is not a power of two >= 4; give the grid, e.g. v4:2x2x4")
  grid = [2, 2] + [1] * (dims - 2)
  if dims == 3 and chips >= 8:
    grid[2] = 2
  order = [2, 1, 0] if dims == 3 else [1, 0]
  i = 0
  while math.prod(grid) < chips:
    grid[order[i % dims]] *= 2
    i += 1
  return tuple(grid)


def parse(name: str, num_slices: int = 1) -> Slice:
  """`v4-32`, `v5e-16`, `v4:2x2x2`, `v5p:2x2x1` or `cpu:8`."""
  if num_slices < 1:
    raise ConfigError(f"--slices: must be >= 1, got {num_slices}")
  m = re.fullmatch(r"cpu:(\d+)", name)
  if m:
    return Slice(name, None, (int(m.group(1)),), num_slices)
  m = re.fullmatch(r"(v4|v5p|v5e|v6e)-(\d+)", name)
  if m:
    chip = CHIPS[m.group(1)]
    n = int(m.group(2))
    if n % chip.cores_per_chip:
      raise ConfigError(f"--topology {name}: {m.group(1)} slices count {chip.cores_per_chip} cores per chip")
    return Slice(name, chip, _grid(n // chip.cores_per_chip, chip.dims, name), num_slices)
  m = re.fullmatch(r"(v4|v5p|v5e|v6e):(\d+(?:x\d+)*)", name)
  if m:
    chip = CHIPS[m.group(1)]
    grid = tuple(int(x) for x in m.group(2).split("x"))
    if len(grid) != chip.dims:
      raise ConfigError(f"--topology {name}: {m.group(1)} grids have {chip.dims} dimensions")
    return Slice(name, chip, grid, num_slices)
  raise ConfigError(f"--topology {name!r}: expected v4-N, v5p-N, v5e-N, v6e-N, GEN:AxB[xC] or cpu:N")


def on_cpu(s: Slice) -> Slice:
  """`s` with CPU devices standing in for its TPU devices: its chip table (HBM, peak FLOP/s) without libtpu."""
  return dataclasses.replace(s, on_cpu=True)


def devices(s: Slice) -> list:
  """The devices to compile for: a libtpu topology description's, or this process's CPU devices."""
  if s.chip is None or s.on_cpu:
    have = jax.devices("cpu")
    want = s.devices_per_slice * s.num_slices
    if len(have) < want:
      raise ConfigError(f"--topology {s.name}: {want} CPU devices needed, {len(have)} present "
                        f"(set XLA_FLAGS=--xla_force_host_platform_device_count={want} before JAX starts)")
    return have[:want]
  _require_libtpu(s)
  # libtpu's /tmp/libtpu_lockfile keeps two processes from driving the same TPU chips. A topology
  # description is compile-only (`xtjax.cli.plan_cmd` also keeps JAX's own backends on CPU), so the
  # lock guards nothing here; taking it would fail a second plan, or any plan next to a libtpu user.
  os.environ["ALLOW_MULTIPLE_LIBTPU_LOAD"] = "1"
  from jax.experimental import topologies

  chips_per_host = (2, 2, 1) if s.devices_per_slice >= CHIPS_PER_HOST else (1, 1, 1)
  topo = topologies.get_topology_desc(
      platform="tpu", topology_name=s.topology_name, chip_config_name="megacore" if s.chip.cores_per_chip == 2 else "default",
      chips_per_host_bounds=chips_per_host, num_slices=s.num_slices)
  return list(topo.devices)


def _require_libtpu(s: Slice) -> None:
  """One line naming the extra when libtpu (what compiles for TPU) is not installed."""
  if os.path.isfile(os.environ.get("TPU_LIBRARY_PATH", "")):
    return
  try:
    import libtpu  # noqa: F401 - what JAX loads to describe a TPU slice
  except ImportError as e:
    raise XtjaxError(f"--topology {s.name}: compiling for a TPU slice needs libtpu: {LIBTPU_MISSING}; "
                     "--memory-only needs no libtpu") from e


def slice_groups(s: Slice, devs: list) -> np.ndarray:
  """Devices as [num_slices, devices_per_slice] (by `slice_index` on TPU, in order on CPU)."""
  if s.chip is None or s.on_cpu or s.num_slices == 1:
    return np.asarray(devs, dtype=object).reshape(s.num_slices, -1)
  by_slice = sorted(devs, key=lambda d: (d.slice_index, d.id))
  return np.asarray(by_slice, dtype=object).reshape(s.num_slices, -1)
