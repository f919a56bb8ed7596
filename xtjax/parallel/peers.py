"""A dead process of a pod is one line, not a C++ abort.

Every process writes a counter into JAX's coordination service every BEAT_S seconds (a thread, so a
long compile or save does not stop it). A watchdog thread exits the process with one line and
exit code 75 (EX_TEMPFAIL: a rerun resumes) when a peer's counter has not moved for PEER_TIMEOUT_S
seconds, or when the coordination service (hosted by process 0) has not answered for as long:

  process 1 of 2 stopped responding at step 12; last complete checkpoint: step 10; rerun to resume

`os._exit` because the main thread is then blocked in a collective with the dead peer. JAX's own
heartbeat timeout (`parallel.distributed`) is set longer, so this line comes before its abort.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import re
import sys
import threading
import time

from etils import epath

log = logging.getLogger(__name__)

PEER_TIMEOUT_S = float(os.environ.get("XTJAX_PEER_TIMEOUT_S", "60"))
BEAT_S = max(0.5, min(5.0, PEER_TIMEOUT_S / 6))
EXIT_CODE = 75
_KEY = "xtjax/alive/{}"


@dataclasses.dataclass
class Progress:
  """What the trainer tells the watchdog: the step it is at and where its checkpoints are."""

  step: int | None = None
  checkpoints: epath.Path | None = None


progress = Progress()


def complete_checkpoints(folder: epath.Path | None) -> list[int]:
  """Steps of the finished checkpoints in `folder` (Orbax's unfinished ones carry a `.orbax-checkpoint-tmp`
  suffix; on a bucket, where nothing is renamed, a finished one holds `commit_success.txt`)."""
  if folder is None or not folder.exists():
    return []
  steps = [int(p.name) for p in folder.iterdir() if re.fullmatch(r"\d+", p.name)]
  if os.fspath(folder).startswith("gs://"):
    steps = [s for s in steps if (folder / str(s) / "commit_success.txt").exists()]
  return sorted(steps)


def dead_line(process: int, count: int) -> str:
  """The one line a survivor prints (the checkpoint listing gets 5 s: the store may be what failed)."""
  found: list = []
  reader = threading.Thread(target=lambda: found.append(complete_checkpoints(progress.checkpoints)), daemon=True)
  reader.start()
  reader.join(5)
  last = f"step {found[0][-1]}" if found and found[0] else ("none" if found else "unknown")
  at = f" at step {progress.step}" if progress.step is not None else " before training started"
  return f"process {process} of {count} stopped responding{at}; last complete checkpoint: {last}; rerun to resume"


def _dead(process: int, count: int) -> None:
  print(dead_line(process, count), file=sys.stderr, flush=True)
  os._exit(EXIT_CODE)


def _missing(e: Exception) -> bool:
  return "NOT_FOUND" in str(e) or "not found" in str(e).lower()


class Watchdog:
  """The beat thread (talks to the coordination service) and the judge thread (only reads clocks)."""

  def __init__(self, client, me: int, count: int, timeout_s: float = PEER_TIMEOUT_S, beat_s: float = BEAT_S):
    self.client, self.me, self.count, self.timeout_s, self.beat_s = client, me, count, timeout_s, beat_s
    now = time.monotonic()
    self.stopped = False  # set at exit: processes leave at different moments then
    self.answered = now  # the last time the coordination service answered
    self.seen = {p: (None, now) for p in range(count) if p != me}  # peer -> (counter, when it last moved)
    for target in (self._beat, self._judge):
      threading.Thread(target=target, name=f"xtjax-peers-{target.__name__[1:]}", daemon=True).start()

  def _beat(self) -> None:
    beat = 0
    while True:
      beat += 1
      try:
        self.client.key_value_set(_KEY.format(self.me), str(beat), allow_overwrite=True)
        for p in self.seen:
          try:
            value = self.client.key_value_try_get(_KEY.format(p))
          except Exception as e:  # noqa: BLE001 - a peer that has not written yet
            if not _missing(e):
              raise
            value = None
          if value != self.seen[p][0]:
            self.seen[p] = (value, time.monotonic())
        self.answered = time.monotonic()
      except Exception as e:  # noqa: BLE001 - the service is down or slow: the judge decides
        log.debug("peer heartbeat failed: %s: %s", type(e).__name__, e)
      time.sleep(self.beat_s)

  def dead_peer(self, now: float) -> int | None:
    if now - self.answered > self.timeout_s:
      return 0  # the coordination service lives in process 0
    stale = [p for p, (_, moved) in self.seen.items() if now - moved > self.timeout_s]
    return stale[0] if stale else None

  def _judge(self) -> None:
    while True:
      time.sleep(self.beat_s)
      dead = self.dead_peer(time.monotonic())
      if dead is not None and not self.stopped:
        _dead(dead, self.count)


def start_watchdog() -> Watchdog | None:
  """Starts the watchdog of this process (after `jax.distributed.initialize`; nothing with one process)."""
  import jax
  from jax._src import distributed

  if jax.process_count() == 1 or distributed.global_state.client is None:
    return None
  dog = Watchdog(distributed.global_state.client, jax.process_index(), jax.process_count())
  atexit.register(lambda: setattr(dog, "stopped", True))  # runs before JAX's own shutdown (registered earlier)
  return dog
