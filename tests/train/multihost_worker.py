"""One process of a multi-host training run on CPU, started by tests/train/test_multihost.py.

The environment describes the cluster (XTJAX_COORDINATOR, XTJAX_NUM_PROCESSES, XTJAX_PROCESS_ID);
each process trains with `Trainer`, records the rows of every batch it built, the losses and a
checksum of the final parameters, and writes them as JSON to `--out`.

  python tests/train/multihost_worker.py --hf DIR --data DIR --workdir DIR --out FILE.json
      [--steps 8] [--stop-after N] [--mesh data=4]
"""

import argparse
import faulthandler
import hashlib
import json
import logging
import os
import signal
import sys
from pathlib import Path

from xtjax.parallel import distributed

distributed.maybe_initialize()  # before anything touches a JAX backend

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402

from xtjax import config as config_lib  # noqa: E402
from xtjax.data import batching  # noqa: E402
from xtjax.runs.schema import TrainConfig  # noqa: E402
from xtjax.train.loop import Trainer  # noqa: E402


def _config(args) -> TrainConfig:
  mesh = {k: int(v) for k, v in (kv.split("=") for kv in args.mesh.split(","))}
  d = {
      "model": {"pretrained": args.hf, "config_overrides": {"dropout_rate": 0.1}},  # dropout keys must resume too
      "tasks": [{"name": "toy_cls", "data": {"path": str(Path(args.data) / "{split}.{lang}.jsonl")}}],
      "batch_size": 8, "eval_batch_size": 8, "steps": args.steps, "eval_every": 100, "log_every": 1,
      "optim": {"learning_rate": 3e-3, "warmup_steps": 2},
      "features": {"max_length": 16},
      "checkpoint": {"every_steps": 100, "keep": 2},
      "mesh": mesh,
      "zero_shot": False,
      "cache_dir": str(Path(args.workdir).parent / "feature_cache"),
  }
  return config_lib.from_dict(TrainConfig, d, "multihost_worker")


def _record_batches(log: list):
  """Wraps TaskStream.batch to note which feature rows this process built for each global batch."""
  orig = batching.TaskStream.batch

  def batch(self, epoch, index, process_index=0, process_count=1):
    out = orig(self, epoch, index, process_index, process_count)
    global_rows = self.global_rows(epoch, index)
    per = self.batch_size // process_count
    rows = global_rows[process_index * per:(process_index + 1) * per]
    n = len(rows)  # the last batch of an epoch may be filled with padding rows (example_mask 0)
    assert np.array_equal(out["input_ids"][:n], self.arrays["input_ids"][rows]), "batch is not these rows"
    assert out["example_mask"][:n].all() and not out["example_mask"][n:].any()
    log.append({"epoch": int(epoch), "index": int(index), "process_index": int(process_index),
                "process_count": int(process_count), "rows": rows.tolist(), "global_rows": global_rows.tolist(),
                "batch_rows": int(out["input_ids"].shape[0])})
    return out

  batching.TaskStream.batch = batch


def _sigterm_self_at(step: int, process: int):
  """Process `process` sends itself SIGTERM while it builds the batch of `step` (1-based): a
  preemption notice that reaches only one worker of the pod."""
  orig = batching.TaskStream.batch
  built = [0]

  def batch(self, *a, **k):
    built[0] += 1
    if built[0] == step and jax.process_index() == process:
      os.kill(os.getpid(), signal.SIGTERM)
    return orig(self, *a, **k)

  batching.TaskStream.batch = batch


def _record_losses(log: list):
  orig = Trainer._log_train

  def log_train(self, book, progress, step, name, metrics):
    log.append({"step": int(step), "loss": float(jax.device_get(metrics["loss"]))})
    return orig(self, book, progress, step, name, metrics)

  Trainer._log_train = log_train


def _checksum(params) -> dict:
  """The same on every process: every leaf gathered to the host, hashed in tree order."""
  h = hashlib.sha256()
  total = 0.0
  for x in jax.tree.leaves(params):
    a = np.asarray(multihost_utils.process_allgather(x, tiled=True))
    h.update(a.tobytes())
    total += float(np.abs(a.astype(np.float64)).sum())
  return {"sha256": h.hexdigest(), "abs_sum": total}


def main(argv=None) -> int:
  p = argparse.ArgumentParser()
  p.add_argument("--hf", required=True)
  p.add_argument("--data", required=True)
  p.add_argument("--workdir", required=True)
  p.add_argument("--out", required=True)
  p.add_argument("--steps", type=int, default=8)
  p.add_argument("--stop-after", type=int, default=None)
  p.add_argument("--mesh", default="data=4")
  p.add_argument("--sigterm-at", type=int, default=None, help="this step's batch: SIGTERM to one process")
  p.add_argument("--sigterm-process", type=int, default=0)
  args = p.parse_args(argv)
  faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test asks a hung worker where it is
  logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                      format=f"[p{jax.process_index()}] %(asctime)s %(name)s: %(message)s")

  batches, losses = [], []
  _record_batches(batches)
  if args.sigterm_at is not None:
    _sigterm_self_at(args.sigterm_at, args.sigterm_process)
  _record_losses(losses)
  trainer = Trainer(_config(args), args.workdir).setup()
  try:
    summary = trainer.run(stop_after_steps=args.stop_after)
    checkpoint_steps = sorted(trainer.ckpt.latest_steps())
  finally:
    trainer.ckpt.close()
  result = {
      "process_index": jax.process_index(),
      "process_count": jax.process_count(),
      "device_count": jax.device_count(),
      "local_device_count": jax.local_device_count(),
      "mesh": dict(trainer.mesh.shape),
      "start": trainer.start_how,
      "status": summary["status"],
      "step": summary["step"],
      "checkpoint_steps": checkpoint_steps,
      "batches": batches,
      "losses": losses,
      "params": _checksum(trainer.state.params),
      "encoder": _checksum(trainer.state.params["encoder"]),
      # Parameters whose shards live on both processes (FSDP across hosts), not just replicated.
      "split_across_processes": sum(not x.is_fully_addressable and not x.is_fully_replicated
                                    for x in jax.tree.leaves(trainer.state.params)),
  }
  Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
