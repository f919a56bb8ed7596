"""JAX's coordination service in a process of its own, so that the death of process 0 is one line too.

`jax.distributed.initialize` starts the service inside process 0. When process 0 dies, the service's
socket closes with it and every other process aborts at once in C++ (`client.h: Terminating process
because the JAX distributed service detected fatal errors`, SIGABRT and a stack trace) before xtjax's
watchdog (`parallel.peers`) can say which process died. Here process 0 starts the service in a small
child process instead. When process 0 exits normally it asks the child to shut the service down; when
process 0 dies, the child keeps serving for GRACE_S more seconds: long enough for every survivor's
watchdog to see process 0's heartbeat stop and exit with its one line (and EXIT_CODE, so a rerun resumes).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys

from xtjax.errors import ConfigError

READY = "xtjax-coordination-service-ready"


def grace_s() -> float:
  """How long an orphaned service outlives process 0 (the survivors' watchdogs decide well within it)."""
  from xtjax.parallel.peers import PEER_TIMEOUT_S

  return 2 * PEER_TIMEOUT_S + 30


class ChildService:
  """What `jax.distributed` holds as its service: `shutdown()` shuts the child's service down and waits."""

  def __init__(self, args: list, kwargs: dict):
    self.proc = subprocess.Popen([sys.executable, "-m", "xtjax.parallel.service", json.dumps([args, kwargs]),
                                  str(grace_s())], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = self.proc.stdout.readline().strip()
    if line != READY:
      self.proc.kill()
      raise ConfigError(f"the JAX coordination service at {args[0]} did not start: {line or 'its process died'}")

  def shutdown(self) -> None:
    if self.proc.poll() is None:
      with contextlib.suppress(BrokenPipeError):
        self.proc.stdin.write("shutdown\n")
        self.proc.stdin.flush()
      self.proc.wait()


@contextlib.contextmanager
def service_in_child_process():
  """During `jax.distributed.initialize`, makes process 0 start the service as a ChildService."""
  from jax._src import distributed as jax_distributed

  module = jax_distributed._jax
  factory = module.get_distributed_runtime_service
  module.get_distributed_runtime_service = lambda *args, **kwargs: ChildService(list(args), kwargs)
  try:
    yield
  finally:
    module.get_distributed_runtime_service = factory


def _serve(spec: str, grace: float) -> None:
  import os
  import time

  from jax._src.lib import _jax

  args, kwargs = json.loads(spec)
  try:
    service = _jax.get_distributed_runtime_service(*args, **kwargs)
  except Exception as e:  # noqa: BLE001 - the parent prints it as one line (e.g. the port is in use)
    print(f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}", flush=True)
    sys.exit(1)
  print(READY, flush=True)
  if sys.stdin.readline().strip() == "shutdown":  # process 0 is exiting normally
    service.shutdown()
    return
  # end of input without the word: process 0 has died. Serve the survivors until their watchdogs have spoken;
  # the service's complaints about missing heartbeats would only follow their one line.
  os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
  time.sleep(grace)


if __name__ == "__main__":
  _serve(sys.argv[1], float(sys.argv[2]))
