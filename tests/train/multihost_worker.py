"""One process of a multi-host training run on CPU, started by tests/train/test_multihost.py.

The environment describes the cluster (XTJAX_COORDINATOR, XTJAX_NUM_PROCESSES, XTJAX_PROCESS_ID);
each process trains with `Trainer`, records the examples it featurised, the examples of every batch
it built, the losses and a checksum of the final parameters, and writes them as JSON to `--out`.

  python tests/train/multihost_worker.py --hf DIR --data DIR --workdir DIR --out FILE.json
      [--steps 8] [--stop-after N] [--mesh data=4] [--evaluate]
      [--sigterm-at N --sigterm-process P [--sigterm-again-during-save]] [--sigkill-at N] [--checkpoint-every N]

`--evaluate` only evaluates the initial parameters on dev and zero-shot (toy_cls and XQuAD-format QA),
recording each process's share of every split and what it featurised.
"""

import argparse
import faulthandler
import hashlib
import json
import logging
import os
import resource
import signal
import sys
import time
from pathlib import Path

from xtjax.parallel import distributed

distributed.maybe_initialize()  # before anything touches a JAX backend

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402

from xtjax import config as config_lib  # noqa: E402
from xtjax.data import batching  # noqa: E402
from xtjax.data.loader import TrainLoader  # noqa: E402
from xtjax.evaluation import zero_shot as zero_shot_module  # noqa: E402
from xtjax.runs.schema import TrainConfig  # noqa: E402
from xtjax.tasks.qa import ExtractiveQATask  # noqa: E402
from xtjax.tasks.synthetic import ToyClassification  # noqa: E402
from xtjax.train.loop import Trainer  # noqa: E402


def _config(args) -> TrainConfig:
  mesh = {k: int(v) for k, v in (kv.split("=") for kv in args.mesh.split(","))}
  d = {
      "model": {"pretrained": args.hf, "config_overrides": {"dropout_rate": 0.1}},  # dropout keys must resume too
      "tasks": [{"name": "toy_cls", "data": {"path": str(Path(args.data) / "{split}.{lang}.jsonl")}}],
      "batch_size": 8, "eval_batch_size": args.eval_batch_size, "steps": args.steps, "eval_every": 100, "log_every": 1,
      "optim": {"learning_rate": 3e-3, "warmup_steps": 2},
      "features": {"max_length": 16},
      "checkpoint": {"every_steps": args.checkpoint_every, "keep": 2},
      "mesh": mesh,
      "zero_shot": False,
      "cache_dir": str(Path(args.workdir).parent / "feature_cache"),
  }
  if args.evaluate:  # a classification and a QA task, dev and zero-shot in two languages
    d["tasks"] = [dict(d["tasks"][0], eval_languages=["en", "de"]),
                  {"name": "xquad", "data": {"path": str(Path(args.data) / "qa" / "{split}.{lang}.json")},
                   "eval_languages": ["en", "de"]}]
    d.update(zero_shot=True, features={"max_length": 32, "doc_stride": 8, "max_query_length": 8})
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
        _signalled.append(step)
        os.kill(os.getpid(), signal.SIGTERM)
      yield element

  TrainLoader.iterate = iterate


def _sigterm_again_during_save():
  """A second SIGTERM while the final checkpoint is written (to every process that got the first): the
  save must finish, not be cut short."""
  from xtjax.checkpoint import RunCheckpoints

  orig = RunCheckpoints.save

  def save(self, step, *args, force=False, **kwargs):
    if force and _signalled:
      os.kill(os.getpid(), signal.SIGTERM)
    return orig(self, step, *args, force=force, **kwargs)

  RunCheckpoints.save = save


_signalled = []


def _sigkill_self_at(step: int, process: int):
  """Process `process` dies (SIGKILL: no handler, no clean-up) as the loop takes the batch of `step`."""
  orig = TrainLoader.iterate

  def iterate(self, start, stop):
    for taken, element in enumerate(orig(self, start, stop), 1):
      if taken == step and jax.process_index() == process:
        os.kill(os.getpid(), signal.SIGKILL)
      yield element

  TrainLoader.iterate = iterate


def _record_featurized(log: list):
  """Wraps the toy task's featuriser to note how many examples each call tokenised."""
  orig = ToyClassification.featurize

  def featurize(self, examples, tokenizer, settings):
    log.append(len(examples))
    return orig(self, examples, tokenizer, settings)

  ToyClassification.featurize = featurize


def _record_eval_shares(log: dict):
  """Wraps the evaluation's share of each split and the two tasks' featurisers: per split and language,
  the examples this process owns and how many examples each featuriser call tokenised."""
  orig_share, current = zero_shot_module.eval_share, {}

  def eval_share(task, split, language, *args, **kwargs):
    where = current["where"] = f"{task.name}/{split}/{language}"
    log[where] = {"featurized": []}
    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
      share = orig_share(task, split, language, *args, **kwargs)
    finally:
      current.pop("where")
    extra = share.features.extra if isinstance(share.features.extra, dict) else {}
    held = [*share.features.arrays.values(), *(v for v in extra.values() if isinstance(v, np.ndarray))]
    log[where].update(num_examples=len(share.examples), examples=share.example_ids.tolist(),
                      # reading, featurising and caching this share; the feature arrays it holds
                      seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - cpu0,
                      feature_mb=sum(a.nbytes for a in held) / 2**20)
    return share

  zero_shot_module.eval_share = eval_share
  for cls in (ToyClassification, ExtractiveQATask):
    def featurize(self, examples, tokenizer, settings, orig=cls.featurize):
      if "where" in current:
        log[current["where"]]["featurized"].append(len(examples))
      return orig(self, examples, tokenizer, settings)

    cls.featurize = featurize


def _evaluate(trainer: Trainer, shares: dict) -> dict:
  """Dev and zero-shot evaluation of the initial parameters (the same on any number of processes);
  process 0 writes the prediction files into the run."""
  params = trainer.state.params
  rss_mb = lambda: int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
  before, t0 = rss_mb(), time.perf_counter()
  dev = trainer.evaluate_dev(params)
  zero_shot = trainer.zero_shot(params)
  return {"process_index": jax.process_index(), "process_count": jax.process_count(), "dev": dev,
          "zero_shot": zero_shot, "shares": shares, "compilations": trainer.eval_model.programs.stats.compilations,
          "eval_seconds": time.perf_counter() - t0, "rss_before_eval_mb": before, "rss_after_eval_mb": rss_mb(),
          "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


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
  p.add_argument("--sigterm-again-during-save", action="store_true", help="a second SIGTERM during the final save")
  p.add_argument("--sigkill-at", type=int, default=None, help="this step's batch: SIGKILL to --sigterm-process")
  p.add_argument("--checkpoint-every", type=int, default=100)
  p.add_argument("--save-params", default=None, help="process 0 saves the final parameters here (.npz)")
  p.add_argument("--evaluate", action="store_true", help="only evaluate (dev and zero-shot) the initial parameters")
  p.add_argument("--eval-batch-size", type=int, default=8)
  args = p.parse_args(argv)
  faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test asks a hung worker where it is
  logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                      format=f"[p{jax.process_index()}] %(asctime)s %(name)s: %(message)s")

  if args.evaluate:
    shares = {}
    _record_eval_shares(shares)
    trainer = Trainer(_config(args), args.workdir).setup()
    try:
      Path(args.out).write_text(json.dumps(_evaluate(trainer, shares), indent=1) + "\n")
    finally:
      trainer.ckpt.close()
    return 0
  batches, losses, featurized = [], [], []
  _record_batches(batches)
  _record_featurized(featurized)
  if args.sigterm_at is not None:
    _sigterm_self_at(args.sigterm_at, args.sigterm_process)
  if args.sigterm_again_during_save:
    _sigterm_again_during_save()
  if args.sigkill_at is not None:
    _sigkill_self_at(args.sigkill_at, args.sigterm_process)
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
      "truncation": trainer.truncation,  # summary.json's: the sums over the processes' shares
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
