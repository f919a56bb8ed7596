"""Multi-host set-up: `jax.distributed.initialize` when the environment describes several processes."""

from __future__ import annotations

import logging
import os

import jax
import numpy as np

log = logging.getLogger(__name__)


def timeouts() -> dict:
  """JAX's coordination-service timeouts (seconds): a process missing heartbeats this long is declared
  dead and JAX aborts (set longer than xtjax's watchdog, `peers.PEER_TIMEOUT_S`, whose one line comes
  first); how long processes wait for each other at exit."""
  from xtjax.parallel.peers import PEER_TIMEOUT_S

  return {"heartbeat_timeout_seconds": int(os.environ.get("XTJAX_HEARTBEAT_TIMEOUT_S", PEER_TIMEOUT_S + 60)),
          "shutdown_timeout_seconds": int(os.environ.get("XTJAX_SHUTDOWN_TIMEOUT_S", "300"))}


def maybe_initialize() -> None:
  """Initialises JAX's distributed runtime when XTJAX_COORDINATOR (or a TPU pod) says so, and starts the
  watchdog that turns a dead peer into one line (`xtjax.parallel.peers`)."""
  from xtjax.parallel import peers
  from xtjax.parallel.service import service_in_child_process

  coord = os.environ.get("XTJAX_COORDINATOR")
  if coord:
    with service_in_child_process():
      jax.distributed.initialize(coordinator_address=coord, num_processes=int(os.environ["XTJAX_NUM_PROCESSES"]),
                                 process_id=int(os.environ["XTJAX_PROCESS_ID"]), **timeouts())
  elif os.environ.get("TPU_WORKER_HOSTNAMES", "").count(",") > 0 or os.environ.get("MEGASCALE_NUM_SLICES"):
    with service_in_child_process():
      jax.distributed.initialize(**timeouts())
  else:
    return
  peers.start_watchdog()
  log.info("distributed: process %d of %d, %d local / %d global devices", jax.process_index(), jax.process_count(),
           jax.local_device_count(), jax.device_count())


def allgather_bytes(blob: bytes) -> list[bytes]:
  """Every process's `blob`, in process order (two all-gathers: the lengths, then the padded bytes)."""
  if jax.process_count() == 1:
    return [blob]
  from jax.experimental import multihost_utils

  sizes = np.asarray(multihost_utils.process_allgather(np.array([len(blob)], np.int64))).reshape(-1)
  buf = np.zeros(max(int(sizes.max()), 1), np.uint8)
  buf[:len(blob)] = np.frombuffer(blob, np.uint8)
  every = np.asarray(multihost_utils.process_allgather(buf))
  return [every[p, :int(n)].tobytes() for p, n in enumerate(sizes)]
