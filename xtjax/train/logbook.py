"""Run logs, written by process 0 only: `metrics.jsonl` always, plus the trackers named in the run's
`report_to` (TensorBoard event files in `<run>/tb`, Weights & Biases). Each tracker is one class in
SINKS; `WANDB_MODE=offline` keeps W&B on disk (`wandb sync` uploads later).

Logs grow by appending, which object stores cannot do: for a remote run directory they are written in
a local mirror that is copied up whole every 30 s and on close (`io_utils.Mirror`)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import jax

from xtjax.errors import XtjaxError
from xtjax.io_utils import Mirror, is_remote, naming_errors, run_path


def _scalars(values: dict) -> dict[str, float]:
  out = {}
  for k, v in values.items():
    if not isinstance(v, (str, dict, bool)) and hasattr(v, "__float__"):
      out[k] = float(v)
  return out


class TensorBoardSink:

  def __init__(self, workdir: Path, where: str, config: dict):
    from tensorboardX import SummaryWriter

    self._tb = SummaryWriter(str(workdir / "tb"))

  def write(self, step: int, kind: str, values: dict) -> None:
    for k, v in _scalars(values).items():
      self._tb.add_scalar(f"{kind}/{k}", v, step)

  def close(self) -> None:
    self._tb.close()


class WandbSink:
  """One W&B run per run directory: its id comes from the directory and config hash, so a resumed run
  continues the same W&B run (`resume="allow"`); metrics are plotted against the trainer's step."""

  def __init__(self, workdir: Path, where: str, config: dict):
    """`workdir`: the local folder written to; `where`: the run directory it stands for (maybe gs://)."""
    try:
      import wandb
    except ImportError:
      raise XtjaxError("report_to: wandb needs the wandb package (pip install 'xtjax[cluster]')") from None
    from xtjax.runs.identity import config_hash

    run_id = hashlib.sha256(f"{where}:{config_hash(config)}".encode()).hexdigest()[:16]
    self._run = wandb.init(project=os.environ.get("WANDB_PROJECT", "xtjax"), id=run_id, resume="allow",
                           name=f"{config.get('name', 'run')}-{where.rstrip('/').rsplit('/', 1)[-1]}", config=config,
                           dir=None if os.environ.get("WANDB_DIR") else str(workdir))
    self._run.define_metric("step")
    self._run.define_metric("*", step_metric="step")

  def write(self, step: int, kind: str, values: dict) -> None:
    row = {f"{kind}/{k}": v for k, v in _scalars(values).items()}
    row["step"] = step
    self._run.log(row)

  def close(self) -> None:
    import wandb

    self._run.finish()
    # finish() can return before wandb-core has written the run's last records; teardown waits for it, so the
    # run file is whole before the mirror uploads the run directory (or a caller reads it)
    wandb.teardown()


SINKS = {"tensorboard": TensorBoardSink, "wandb": WandbSink}


class Logbook:

  def __init__(self, workdir: Path, report_to=("tensorboard",), config: dict | None = None):
    self.active = jax.process_index() == 0
    unknown = [name for name in report_to if name not in SINKS]
    if unknown:
      raise XtjaxError(f"report_to: unknown tracker {unknown[0]!r} (known: {sorted(SINKS)})")
    self._mirror = Mirror(workdir, pull=("metrics.jsonl",)) if self.active and is_remote(workdir) else None
    local = self._mirror.local if self._mirror is not None else Path(workdir)
    self.path = local / "metrics.jsonl"
    where = str(run_path(workdir))  # the run directory the trackers stand for (maybe gs://)
    self._sinks = [SINKS[name](local, where, config or {}) for name in report_to] if self.active else []

  def write(self, step: int, kind: str, values: dict) -> None:
    if not self.active:
      return
    row = {"step": int(step), "kind": kind, "time": round(time.time(), 3)}
    row.update({k: (float(v) if hasattr(v, "__float__") and not isinstance(v, (str, dict)) else v)
                for k, v in values.items()})
    with naming_errors(self.path), open(self.path, "a", encoding="utf-8") as f:  # a full disk names the file
      f.write(json.dumps(row, ensure_ascii=False) + "\n")
    for sink in self._sinks:
      sink.write(int(step), kind, values)
    if self._mirror is not None:
      self._mirror.sync()

  def close(self) -> None:
    for sink in self._sinks:
      sink.close()
    if self._mirror is not None:
      self._mirror.close()
