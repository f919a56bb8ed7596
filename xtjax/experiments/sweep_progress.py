"""What a sweep prints as it goes: `run 7/15: intermediate-mnli epochs=10 seed=1 (elapsed 0:12:31, ETA 0:09:40)`.

The ETA sums, over the runs still to go, their planned work (steps, else epochs) at the seconds per unit of
work the finished runs of the same phase took in this invocation (any phase's rate until one has finished);
runs done before this invocation are not counted."""

from __future__ import annotations

import datetime
import logging
import time

log = logging.getLogger(__name__)


def run_axes(run, cells) -> str:
  """The axis values every cell holding `run` agrees on (`epochs=10 seed=1`): what tells this run apart."""
  holding = [c.axes for c in cells if any(r.run_dir == run.run_dir for r in c.runs)]
  if not holding:
    return ""
  shared = {k: v for k, v in holding[0].items() if all(a.get(k) == v for a in holding)}
  return " ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in shared.items())


def _work(run) -> float:
  return float(run.config.steps or run.config.epochs or 1)


def _clock(seconds: float) -> str:
  return str(datetime.timedelta(seconds=round(seconds)))


class SweepProgress:
  """Counts the runs this invocation trains and logs one line as each starts."""

  def __init__(self, todo, cells, clock=time.monotonic):
    self.todo, self.cells, self.clock = list(todo), cells, clock
    self.started, self.done = clock(), []  # (run, seconds)
    self._current = None

  def start(self, run) -> str:
    i = next(k for k, r in enumerate(self.todo) if r.run_dir == run.run_dir)
    self._current = (run, self.clock())
    eta = self.eta(self.todo[i:])
    line = (f"run {i + 1}/{len(self.todo)}: {run.label} {run_axes(run, self.cells)}".rstrip()
            + f" (elapsed {_clock(self.clock() - self.started)}, ETA {_clock(eta) if eta is not None else 'after the first run'})")
    log.info("%s", line)
    return line

  def finish(self) -> None:
    if self._current is not None:
      run, t0 = self._current
      self.done.append((run, self.clock() - t0))
      self._current = None

  def eta(self, remaining) -> float | None:
    if not self.done:
      return None
    rate = {}
    for label in {r.label for r, _ in self.done}:
      mine = [(r, s) for r, s in self.done if r.label == label]
      rate[label] = sum(s for _, s in mine) / sum(_work(r) for r, _ in mine)
    overall = sum(s for _, s in self.done) / sum(_work(r) for r, _ in self.done)
    return sum(_work(r) * rate.get(r.label, overall) for r in remaining)
