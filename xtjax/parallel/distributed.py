"""Multi-host set-up: `jax.distributed.initialize` when the environment describes several processes."""

from __future__ import annotations

import logging
import os

import jax

log = logging.getLogger(__name__)


def maybe_initialize() -> None:
  """Initialises JAX's distributed runtime when XTJAX_COORDINATOR (or a TPU pod) says so."""
  coord = os.environ.get("XTJAX_COORDINATOR")
  if coord:
    jax.distributed.initialize(coordinator_address=coord, num_processes=int(os.environ["XTJAX_NUM_PROCESSES"]),
                               process_id=int(os.environ["XTJAX_PROCESS_ID"]))
  elif os.environ.get("TPU_WORKER_HOSTNAMES", "").count(",") > 0 or os.environ.get("MEGASCALE_NUM_SLICES"):
    jax.distributed.initialize()
  else:
    return
  log.info("distributed: process %d of %d, %d local / %d global devices", jax.process_index(), jax.process_count(),
           jax.local_device_count(), jax.device_count())
