"""One process of a multi-host training run on CPU, started by tests/train/test_multihost.py.

The environment describes the cluster (XTJAX_COORDINATOR, XTJAX_NUM_PROCESSES, XTJAX_PROCESS_ID);
each process trains with `Trainer`, records the examples it featurised, the examples of every batch
it built, the losses and a checksum of the final parameters, and writes them as JSON to `--out`.

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
from xtjax.data.loader import TrainLoader  # noqa: E402
from xtjax.runs.schema import TrainConfig  # noqa: E402
from xtjax.tasks.synthetic import ToyClassification  # noqa: E402
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
  """Wraps TaskStream.batch to note which examples this process put in each global batch (the loader
  builds batches ahead of the step that uses them: `main` keeps the records of steps that ran)."""
  orig = batching.TaskStream.batch

  def batch(self, epoch, index):
    out = orig(self, epoch, index)
    rows, valid = self.rows(epoch, index)
    assert np.array_equal(out["input_ids"], self.arrays["input_ids"][rows]), "batch is not these rows"
    assert np.array_equal(out["example_mask"], valid)  # padding rows (a spent shard) carry example_mask 0
    log.append({"epoch": int(epoch), "index": int(index), "process_index": jax.process_index(),
                "process_count": jax.process_count(), "owned_shards": list(self.spec.owned),
                "num_shards": self.spec.num_shards, "examples": self.example_ids[rows[valid]].tolist(),
                "batch_rows": int(out["input_ids"].shape[0])})
    return out

  batching.TaskStream.batch = batch


def _sigterm_self_at(step: int, process: int):
  """Process `process` sends itself SIGTERM as the loop takes the batch of `step` (1-based): a
  preemption notice that reaches only one worker of the pod."""
  orig = TrainLoader.iterate

  def iterate(self, start, stop):
    for taken, element in enumerate(orig(self, start, stop), 1):
      if taken == step and jax.process_index() == process:
        os.kill(os.getpid(), signal.SIGTERM)
      yield element

  TrainLoader.iterate = iterate


def _record_featurized(log: list):
  """Wraps the toy task's featuriser to note how many examples each call tokenised."""
  orig = ToyClassification.featurize

  def featurize(self, examples, tokenizer, settings):
    log.append(len(examples))
    return orig(self, examples, tokenizer, settings)

  ToyClassification.featurize = featurize


def _record_losses(log: list):
  orig = Trainer._log_train

  def log_train(self, book, progress, step, name, metrics):
    log.append({"step": int(step), "loss": float(jax.device_get(metrics["loss"]))})
    return orig(self, book, progress, step, name, metrics)

  Trainer._log_train = log_train


def _checksum(params, save_to: str | None = None) -> dict:
  """The same on every process: every leaf gathered to the host, hashed in tree order (and saved)."""
  h = hashlib.sha256()
  total = 0.0
  leaves = []
  for x in jax.tree.leaves(params):
    a = np.asarray(multihost_utils.process_allgather(x, tiled=True))
    h.update(a.tobytes())
    total += float(np.abs(a.astype(np.float64)).sum())
    leaves.append(a)
  if save_to and jax.process_index() == 0:
    np.savez(save_to, *leaves)
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
  p.add_argument("--save-params", default=None, help="process 0 saves the final parameters here (.npz)")
  args = p.parse_args(argv)
  faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test asks a hung worker where it is
  logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                      format=f"[p{jax.process_index()}] %(asctime)s %(name)s: %(message)s")

  batches, losses, featurized = [], [], []
  _record_batches(batches)
  _record_featurized(featurized)
  if args.sigterm_at is not None:
    _sigterm_self_at(args.sigterm_at, args.sigterm_process)
  _record_losses(losses)
  trainer = Trainer(_config(args), args.workdir).setup()
  first_step = trainer.position.step
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
      # The batches of the steps that ran, in step order (one task: (epoch, index) order).
      "batches": sorted(batches, key=lambda b: (b["epoch"], b["index"]))[:summary["step"] - first_step],
      "losses": losses,
      "featurized": featurized,
      "train_examples": trainer.train_sets["toy_cls"].example_ids.tolist(),
      "params": _checksum(trainer.state.params, args.save_params),
      "encoder": _checksum(trainer.state.params["encoder"]),
      # Parameters whose shards live on both processes (FSDP across hosts), not just replicated.
      "split_across_processes": sum(not x.is_fully_addressable and not x.is_fully_replicated
                                    for x in jax.tree.leaves(trainer.state.params)),
  }
  Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
