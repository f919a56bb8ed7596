"""SIGTERM (Cloud TPU spot / preemptible VMs, `xt-tpu stop`) and SIGINT (Ctrl-C) -> every process stops
at the same step and saves a checkpoint there.

On a pod, a signal reaches the workers at different moments. If each process stopped when its own
signal arrived, one would leave the loop at step N while the others ran step N+1, and the
collective Orbax save would hang or save different steps. So the flag is agreed: after every step,
each process contributes its flag to one all-gather and all stop together when any was signalled.
With one process no collective is needed.

The handlers stay installed until the final save has been written (`Trainer.run` leaves the block
after `ckpt.wait()`): a second signal prints `saving, please wait` and is otherwise ignored; a third
aborts at once (the unfinished checkpoint is removed by the next run, which resumes from the one before).
A command stopped by a signal exits with 128 + its number, as a shell reports it: 130 (SIGINT), 143 (SIGTERM).
"""

from __future__ import annotations

import logging
import os
import signal
import sys

import jax
import numpy as np

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)
_stopped_by: list[int] = []  # the first signal of this process's last interrupted run


def exit_code() -> int:
  """128 + the signal that interrupted this process's last run (0 when none did)."""
  return 128 + _stopped_by[-1] if _stopped_by else 0


def interrupted_line(step: int) -> str:
  return f"interrupted at step {step}; saved; rerun the same command to resume"


class Preemption:
  """Context manager installing the SIGTERM / SIGINT handlers; `should_stop()` is the agreed decision."""

  def __init__(self):
    self.requested = False
    self.signals = 0
    self._old: dict[int, object] = {}

  def __enter__(self):
    _stopped_by.clear()
    for signum in SIGNALS:
      try:
        self._old[signum] = signal.signal(signum, self._handle)
      except ValueError:  # not the main thread: the caller's own handling applies
        pass
    return self

  def _handle(self, signum, frame):
    self.signals += 1
    name = signal.Signals(signum).name
    if self.signals == 1:
      self.requested = True
      _stopped_by[:] = [signum]
      log.warning("%s received: saving a checkpoint at the next step boundary", name)
    elif self.signals == 2:
      print("saving, please wait", file=sys.stderr, flush=True)
    else:
      print(f"{name} a third time: stopped without saving; a rerun resumes from the last complete checkpoint",
            file=sys.stderr, flush=True)
      os._exit(128 + signum)

  def should_stop(self) -> bool:
    """True on every process, at the same step, once any process received SIGTERM or SIGINT (every
    process then exits with the code of the signal that stopped the pod)."""
    mine = _stopped_by[-1] if self.requested and _stopped_by else 0
    if jax.process_count() == 1:
      return self.requested
    from jax.experimental import multihost_utils

    signums = np.asarray(multihost_utils.process_allgather(np.array([mine], np.int32))).reshape(-1)
    received = [int(s) for s in signums if s]
    if received and not self.requested:
      _stopped_by[:] = [received[0]]
    return bool(received)

  def __exit__(self, *exc):
    for signum, old in self._old.items():
      signal.signal(signum, old)
