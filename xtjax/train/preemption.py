"""SIGTERM (Cloud TPU spot / preemptible VMs, `xt-tpu stop`) -> every process stops at the same step.

On a pod, SIGTERM reaches the workers at different moments. If each process stopped when its own
signal arrived, one would leave the loop at step N while the others ran step N+1, and the
collective Orbax save would hang or save different steps. So the flag is agreed: after every step,
each process contributes its flag to one all-gather and all stop together when any was signalled.
With one process no collective is needed.
"""

from __future__ import annotations

import logging
import signal

import jax
import numpy as np

log = logging.getLogger(__name__)


class Preemption:
  """Context manager installing the SIGTERM handler; `should_stop()` is the agreed decision."""

  def __init__(self):
    self.requested = False
    self._old = None

  def __enter__(self):
    try:
      self._old = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # not the main thread: the caller's own handling applies
      self._old = None
    return self

  def _handle(self, signum, frame):
    self.requested = True
    log.warning("SIGTERM received: saving a checkpoint at the next step boundary")

  def should_stop(self) -> bool:
    """True on every process, at the same step, once any process received SIGTERM."""
    if jax.process_count() == 1:
      return self.requested
    from jax.experimental import multihost_utils

    flags = multihost_utils.process_allgather(np.array([int(self.requested)], np.int32))
    return bool(np.asarray(flags).max())

  def __exit__(self, *exc):
    if self._old is not None:
      signal.signal(signal.SIGTERM, self._old)
