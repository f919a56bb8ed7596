"""What holds a compiled program's temporaries: the largest slots of XLA's buffer assignment.

XLA packs every temporary of a program into one preallocated block per memory space; values whose
lifetimes do not overlap share an offset (a slot). `largest_temporaries` reads the compiler's own dump
(`xla_dump_to`: `*buffer-assignment.txt` and the optimized HLO, written by CPU, GPU and libtpu alike)
and names, per slot of the default memory space, its size, the largest value held there (shape and
the JAX operation that made it, from the HLO's `op_name` metadata) and how many other values reuse it.
That is how `xtjax plan --buffers` answers "30 GiB of temporaries of unknown origin".
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

_ALLOCATION = re.compile(r"^allocation \d+: size (\d+),(.*)$")
_VALUE = re.compile(r"^ value: <\d+ ([^ >]+)[^>]*> \(size=(\d+),offset=(\d+)\): (.*)$")
_OP_NAME = re.compile(r'^\s*(?:ROOT )?%?([\w.\-]+) = .*?metadata=\{op_name="((?:[^"\\]|\\.)*)"')
_LAYOUT = re.compile(r"\{[^{}]*\}")


@dataclasses.dataclass(frozen=True)
class Slot:
  """One offset of the temporaries' block: its size, the largest value there and its operation."""

  bytes: int
  shape: str  # of the largest value, e.g. "f32[4096,250112]"
  op: str  # JAX's name of the operation that produced it ("" when the HLO carries none)
  values: int  # values sharing the slot over the program's run


def _files(dump_dir: Path, suffix: str) -> list[Path]:
  return sorted(p for p in Path(dump_dir).iterdir() if p.name.endswith(suffix))


def _program_files(dump_dir: Path) -> tuple[Path, Path]:
  """(buffer assignment, optimized HLO) of the largest program in `dump_dir` (the compiled step; XLA may
  dump small helper modules beside it)."""
  assignments = _files(dump_dir, "after_optimizations-buffer-assignment.txt")
  if not assignments:
    raise FileNotFoundError(f"{dump_dir}: no *after_optimizations-buffer-assignment.txt (did the compile dump?)")
  assignment = max(assignments, key=lambda p: p.stat().st_size)
  hlo = assignment.with_name(assignment.name.replace("-buffer-assignment.txt", ".txt"))
  if not hlo.exists():  # a compile refused as larger than HBM stops before writing the final HLO
    hlo = assignment.with_name(assignment.name.replace("-buffer-assignment.txt", "_before_buffer_assignment.txt"))
  return assignment, hlo


def op_names(hlo_text: str) -> dict[str, str]:
  """HLO instruction name -> JAX's `op_name` (without the leading `jit(step)/`)."""
  out = {}
  for line in hlo_text.splitlines():
    if "op_name=" in line and (m := _OP_NAME.match(line)):
      out[m.group(1)] = re.sub(r"^jit\([^)]*\)/", "", m.group(2).replace("\\'", "'"))
  return out


def temp_values(assignment_text: str) -> list[tuple[str, int, int, str]]:
  """(instruction, size, offset, shape) of every value in the default memory space's temporaries block."""
  out, inside = [], False
  for line in assignment_text.splitlines():
    if line.startswith("allocation "):
      m = _ALLOCATION.match(line)
      inside = bool(m) and "preallocated-temp" in m.group(2) and "color" not in m.group(2)
      continue
    if inside and (m := _VALUE.match(line)):
      name = re.sub(r"\{[\d,]*\}$", "", m.group(1))
      out.append((name, int(m.group(2)), int(m.group(3)), _LAYOUT.sub("", m.group(4)).strip()))
  return out


def slots(values: list[tuple[str, int, int, str]], names: dict[str, str]) -> list[Slot]:
  """The block's slots, largest first: values grouped by offset, a slot as large as its largest value."""
  by_offset: dict[int, list[tuple[str, int, int, str]]] = {}
  for v in values:
    by_offset.setdefault(v[2], []).append(v)
  out = []
  for group in by_offset.values():
    name, size, _, shape = max(group, key=lambda v: v[1])
    out.append(Slot(size, shape, names.get(name, ""), len(group)))
  return sorted(out, key=lambda s: -s.bytes)


def largest_temporaries(dump_dir: str | Path, n: int) -> list[Slot]:
  """The `n` largest slots of the temporaries of the program dumped into `dump_dir`."""
  assignment, hlo = _program_files(Path(dump_dir))
  names = op_names(hlo.read_text()) if hlo.exists() else {}
  return slots(temp_values(assignment.read_text()), names)[:n]


def format_slots(name: str, temp_bytes: int, found: list[Slot], width: int = 110) -> list[str]:
  """Lines for `xtjax plan --buffers`: one slot a line, its size, shape, operation and sharers."""
  lines = [f"largest temporaries of {name} (of {temp_bytes / 2 ** 30:.2f} GiB; slots reuse memory over the step, "
           "so they overlap in time, not in space):"]
  for s in found:
    op = s.op if len(s.op) <= width else "..." + s.op[-(width - 3):]
    shared = f" (+{s.values - 1} values)" if s.values > 1 else ""
    lines.append(f"  {s.bytes / 2 ** 30:8.2f} GiB  {s.shape}{shared}  {op}")
  return lines
