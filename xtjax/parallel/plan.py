"""Ahead-of-time compilation of a sharded program and what it costs per device.

`measure` lowers and compiles a jitted function for abstract arguments (ShapeDtypeStructs, so no
weights exist) and reads XLA's memory and cost analyses; `sharded_bytes` and `sharding_rows` say
how a pytree of arrays is split over the mesh. XLA's `optimal_seconds` is not reported: libtpu
returns negative values for it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import re
import tempfile
import time

import jax
from jax.experimental.compilation_cache import compilation_cache
import numpy as np

from xtjax.parallel.buffers import largest_temporaries

# A plan "fits" when its per-device total stays under this share of HBM (the rest is for XLA's
# runtime buffers, fragmentation and the input pipeline's prefetched batches).
HEADROOM = 0.9


@dataclasses.dataclass(frozen=True)
class Compiled:
  """Per-device numbers of one compiled program."""

  name: str
  compile_seconds: float  # wall clock
  compile_cpu_seconds: float  # this process's CPU time: comparable across loaded and quiet machines
  argument_bytes: int
  output_bytes: int
  alias_bytes: int  # outputs that reuse donated argument buffers
  temp_bytes: int  # activations and other temporaries
  flops: float  # XLA's count for one device
  lower_cpu_seconds: float = 0.0  # of compile_cpu_seconds, JAX's trace and lowering to StableHLO (the rest is XLA)
  program: str = ""  # program_hash of what was compiled
  largest_temporaries: tuple = ()  # `buffers.Slot`s as dicts, when asked for (`measure(buffers=N)`)

  @property
  def peak_bytes(self) -> int:
    """Live at once: arguments, temporaries and the outputs that do not reuse a donated buffer."""
    return self.argument_bytes + self.temp_bytes + self.output_bytes - self.alias_bytes


# libtpu refuses to compile a program larger than HBM, in one of two forms (0.0.42 names the temporaries alone):
# "Ran out of memory on HBM, the total memory required for HLO temporaries (51.23G) exceeds available HBM (30.75G)"
# "Ran out of memory in memory space hbm. Used 40.12G of 30.75G hbm. Exceeded hbm capacity by 9.37G."
_TEMPS = re.compile(r"memory required for HLO temporaries \(([\d.]+)([KMGT])\) exceeds available HBM \(([\d.]+)([KMGT])\)")
_USED = re.compile(r"Used ([\d.]+)([KMGT]) of ([\d.]+)([KMGT]) hbm")
_UNIT = {"K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30, "T": 2 ** 40}


@dataclasses.dataclass(frozen=True)
class Overflow:
  """A compile the compiler refused because the program needs more HBM than one device has."""

  name: str  # the program ("train_step", "eval_step")
  needed: str  # what `needed_bytes` counts: "temporaries" (a lower bound of the peak) or "peak"
  needed_bytes: float
  available_bytes: float  # HBM per device, as the compiler counts it
  message: str  # the compiler's first line
  largest_temporaries: tuple = ()  # `buffers.Slot`s as dicts, when asked for: what the refused program holds

  def text(self) -> str:
    return (f"does not fit: {self.name} needs {self.needed_bytes / 2 ** 30:.2f} GiB "
            f"{'of temporaries' if self.needed == 'temporaries' else 'at its peak'} against "
            f"{self.available_bytes / 2 ** 30:.2f} GiB HBM per device")


class DoesNotFit(Exception):
  """`measure`'s answer when the compiler refuses a program larger than HBM (`.overflow` has the figures)."""

  def __init__(self, overflow: Overflow):
    super().__init__(overflow.text())
    self.overflow = overflow


def hbm_overflow(name: str, text: str) -> Overflow | None:
  """The figures of a compiler's out-of-HBM refusal in `text`, or None when `text` is another error."""
  if "RESOURCE_EXHAUSTED" not in text:
    return None
  first = text.strip().splitlines()[0][:300]
  for needed, pattern in (("temporaries", _TEMPS), ("peak", _USED)):
    if m := pattern.search(text):
      return Overflow(name, needed, float(m.group(1)) * _UNIT[m.group(2)], float(m.group(3)) * _UNIT[m.group(4)],
                      first)
  return None


def program_hash(lowered) -> str:
  """sha256 (16 hex digits) of a lowered program's StableHLO text, without source locations: the same
  hash is the same program for XLA, whichever code produced it."""
  return hashlib.sha256(lowered.as_text().encode()).hexdigest()[:16]


@contextlib.contextmanager
def _persistent_cache_off():
  """The persistent compilation cache off for the compiles inside. jax decides once per process whether the
  cache is used (`is_cache_used` memoises it), so the flag alone is not enough once anything compiled: the
  cache is reset on the way in, and on the way out (the next compile re-initialises it from the flags)."""
  enabled = jax.config.jax_enable_compilation_cache
  jax.config.update("jax_enable_compilation_cache", False)
  compilation_cache.reset_cache()
  try:
    yield
  finally:
    jax.config.update("jax_enable_compilation_cache", enabled)
    compilation_cache.reset_cache()


def measure(name: str, jitted, *abstract_args, buffers: int = 0) -> Compiled:
  """Compiles `jitted` for `abstract_args`; `buffers` > 0 also names the largest slots of its temporaries
  (the compiler dumps its buffer assignment into a scratch folder, `xtjax.parallel.buffers`)."""
  t0, c0 = time.perf_counter(), time.process_time()
  lowered = jitted.trace(*abstract_args).lower()
  lower_cpu = time.process_time() - c0
  # A persistent-cache hit compiles nothing, so dumps nothing (the cache key leaves dump options out).
  with tempfile.TemporaryDirectory(prefix="xtjax-buffers-") as dump, \
       _persistent_cache_off() if buffers else contextlib.nullcontext():
    try:
      compiled = lowered.compile(**({"compiler_options": {"xla_dump_to": dump}} if buffers else {}))
    except jax.errors.JaxRuntimeError as e:
      if (overflow := hbm_overflow(name, str(e))) is None:
        raise
      if buffers:  # the compiler assigned buffers before it refused: they say what does not fit
        overflow = dataclasses.replace(overflow, largest_temporaries=_slots(dump, buffers))
      raise DoesNotFit(overflow) from e
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    slots = _slots(dump, buffers) if buffers else ()
  mem = compiled.memory_analysis()
  cost = compiled.cost_analysis()
  return Compiled(name, round(seconds, 2), round(cpu_seconds, 2), int(mem.argument_size_in_bytes), int(mem.output_size_in_bytes),
                  int(mem.alias_size_in_bytes), int(mem.temp_size_in_bytes), float(cost.get("flops", float("nan"))),
                  round(lower_cpu, 2), program_hash(lowered), slots)


def _slots(dump: str, n: int) -> tuple[dict, ...]:
  return tuple(dataclasses.asdict(s) for s in largest_temporaries(dump, n))


def _leaves_with_shardings(tree, shardings):
  values = jax.tree.leaves(tree)
  shs = jax.tree.leaves(shardings, is_leaf=lambda x: isinstance(x, jax.sharding.Sharding))
  if len(values) != len(shs):
    raise ValueError(f"sharded_bytes: {len(values)} arrays but {len(shs)} shardings")
  return zip(values, shs)


def shard_bytes(shape, dtype, sharding) -> int:
  return int(math.prod(sharding.shard_shape(tuple(shape)))) * np.dtype(dtype).itemsize


def sharded_bytes(tree, shardings) -> int:
  """Bytes one device holds of a pytree of abstract arrays under matching shardings."""
  return sum(shard_bytes(x.shape, x.dtype, sh) for x, sh in _leaves_with_shardings(tree, shardings))


def sharding_rows(paths_and_values, shardings) -> list[dict]:
  """One row per array: path, global shape, PartitionSpec, devices it is split over, bytes per device."""
  rows = []
  items = list(paths_and_values)
  shs = jax.tree.leaves(shardings, is_leaf=lambda x: isinstance(x, jax.sharding.Sharding))
  for (path, x), sh in zip(items, shs):
    per_device = shard_bytes(x.shape, x.dtype, sh)
    total = int(math.prod(x.shape)) * np.dtype(x.dtype).itemsize
    rows.append({"path": path, "shape": list(x.shape), "dtype": str(np.dtype(x.dtype)),
                 "spec": str(tuple(sh.spec)), "shards": total // max(per_device, 1),
                 "bytes_per_device": per_device})
  return rows


def step_seconds(flops_per_device: float, peak: float, mfu: float) -> float:
  return flops_per_device / (peak * mfu)
