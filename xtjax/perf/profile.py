"""Where the time of a compiled step goes: a jax.profiler trace reduced to per-HLO-op times.

Times are summed over the threads that ran each op (XLA:CPU runs independent ops concurrently and
library calls spread over a worker pool whose share is not attributed to an op), so they rank ops
rather than add up to wall time. Each op is shown with its HLO instruction from the compiled text.
"""

from __future__ import annotations

import collections
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

_SKIP = ("ThunkExecutor", "ThreadpoolListener", "Await", "end: ")


def _hlo_lines(hlo_text: str | None) -> dict[str, str]:
  out = {}
  for line in (hlo_text or "").splitlines():
    m = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = (.*)", line)
    if m and m.group(1) not in out:
      out[m.group(1)] = m.group(2)
  return out


def kernel_profile(fn: Callable[[], Any], iters: int = 3, hlo_text: str | None = None, top: int = 25,
                   trace_dir: str | Path | None = None) -> dict[str, Any]:
  """Runs `fn` (which must block) `iters` times under the profiler; ms per call by op and by op kind."""
  keep = trace_dir is not None
  trace_dir = Path(trace_dir) if keep else Path(tempfile.mkdtemp(prefix="xtjax-trace-"))
  fn()
  jax.profiler.start_trace(str(trace_dir))
  t0 = time.perf_counter()
  for _ in range(iters):
    fn()
  wall = (time.perf_counter() - t0) / iters
  jax.profiler.stop_trace()
  files = sorted(trace_dir.glob("**/*.xplane.pb"), key=lambda p: p.stat().st_mtime)
  data = jax.profiler.ProfileData.from_file(str(files[-1]))
  per_op: collections.Counter = collections.Counter()
  for plane in data.planes:
    if not plane.name.startswith("/host") and not plane.name.startswith("/device"):
      continue
    for line in plane.lines:
      if line.name == "python":
        continue
      for ev in line.events:
        if any(s in ev.name for s in _SKIP):
          continue
        per_op[ev.name] += ev.duration_ns
  if not keep:
    shutil.rmtree(trace_dir, ignore_errors=True)
  hlo = _hlo_lines(hlo_text)
  by_kind: collections.Counter = collections.Counter()
  for name, ns in per_op.items():
    by_kind[re.sub(r"\.\d+$", "", name)] += ns
  ms = lambda ns: ns / iters / 1e6  # noqa: E731
  return {
      "wall_ms": wall * 1e3,
      "op_thread_ms": ms(sum(per_op.values())),
      "by_kind": [{"kind": k, "ms": ms(v)} for k, v in by_kind.most_common(top)],
      "top_ops": [{"op": k, "ms": ms(v), "hlo": hlo.get(k, "")[:160]} for k, v in per_op.most_common(top)],
      "trace_dir": str(trace_dir) if keep else None,
  }


def format_profile(p: dict[str, Any], top: int = 15) -> str:
  lines = [f"profile: {p['wall_ms']:.1f} ms wall per call, {p['op_thread_ms']:.1f} ms summed over op threads"]
  lines += [f"  {k['ms']:8.2f} ms  {k['kind']}" for k in p["by_kind"][:top]]
  lines.append("  top ops:")
  lines += [f"  {o['ms']:8.2f} ms  {o['op']:<28} {o['hlo'][:110]}" for o in p["top_ops"][:top]]
  return "\n".join(lines)
