"""Run logs: `metrics.jsonl` and TensorBoard event files, written by process 0 only.

Both grow by appending, which object stores cannot do: for a remote run directory they are written in
a local mirror that is copied up whole every 30 s and on close (`io_utils.Mirror`)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax

from xtjax.io_utils import Mirror, is_remote, naming_errors


class Logbook:

  def __init__(self, workdir: Path, tensorboard: bool = True):
    self.active = jax.process_index() == 0
    self._mirror = Mirror(workdir, pull=("metrics.jsonl",)) if self.active and is_remote(workdir) else None
    local = self._mirror.local if self._mirror is not None else Path(workdir)
    self.path = local / "metrics.jsonl"
    self._tb = None
    if self.active and tensorboard:
      try:
        from tensorboardX import SummaryWriter

        self._tb = SummaryWriter(str(local / "tb"))
      except ImportError:  # optional: logs still go to metrics.jsonl
        self._tb = None

  def write(self, step: int, kind: str, values: dict) -> None:
    if not self.active:
      return
    row = {"step": int(step), "kind": kind, "time": round(time.time(), 3)}
    row.update({k: (float(v) if hasattr(v, "__float__") and not isinstance(v, (str, dict)) else v)
                for k, v in values.items()})
    with naming_errors(self.path), open(self.path, "a", encoding="utf-8") as f:  # a full disk names the file
      f.write(json.dumps(row, ensure_ascii=False) + "\n")
    if self._tb is not None:
      for k, v in values.items():
        if isinstance(v, (int, float)) or hasattr(v, "__float__"):
          try:
            self._tb.add_scalar(f"{kind}/{k}", float(v), int(step))
          except (TypeError, ValueError):
            pass
    if self._mirror is not None:
      self._mirror.sync()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
    if self._mirror is not None:
      self._mirror.close()
