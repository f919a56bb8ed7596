"""Host batch-build time per step against train-step time, on CPU with the tiny XLM-R (issue 12, item 5).

Trains the toy task (`toy_cls`) with `Trainer` on N examples and reports, per step (median ms):
  host_build_ms  building this process's host batch (`TrainLoader.host_batch`) and putting it on the mesh
  step_ms        the compiled train step alone, blocking on its result
  loop_ms        the training loop's wall time per step in steady state (between consecutive logged steps)
  loop_wait_ms   how long the loop waited for its next batch (0 when prefetch hides the build)

  PYTHONPATH=$PWD python scripts/bench_input.py --train-examples 392702 --batch-size 32 --max-length 128
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import jax
import numpy as np


def main(argv=None) -> int:
  p = argparse.ArgumentParser()
  p.add_argument("--train-examples", type=int, default=392702)  # MNLI's training set
  p.add_argument("--batch-size", type=int, default=32)
  p.add_argument("--max-length", type=int, default=128)
  p.add_argument("--steps", type=int, default=60)
  p.add_argument("--root", default=None, help="where the data, feature cache and run go (default: a temp dir)")
  args = p.parse_args(argv)

  from xtjax import config as config_lib
  from xtjax.runs.schema import TrainConfig
  from xtjax.tasks.synthetic import write_toy_data
  from xtjax.tiny import make_tiny_hf
  from xtjax.train.loop import Trainer

  root = Path(args.root or tempfile.mkdtemp(prefix="bench_input_"))
  if not (root / "hf").exists():
    make_tiny_hf(root / "hf", "xlm-roberta")
  if not (root / "data" / "train.en.jsonl").exists():
    write_toy_data(root / "data", n_train=args.train_examples, n_eval=32, languages=("en",))
  d = {"model": {"pretrained": str(root / "hf")},
       "tasks": [{"name": "toy_cls", "data": {"path": str(root / "data" / "{split}.{lang}.jsonl")}}],
       "batch_size": args.batch_size, "eval_batch_size": args.batch_size, "steps": args.steps, "eval_every": 10**9,
       "log_every": 1, "zero_shot": False, "features": {"max_length": args.max_length},
       "checkpoint": {"every_steps": 10**9, "async_save": False}, "mesh": {"data": 1, "devices": 1},
       "cache_dir": str(root / "cache")}
  cfg = config_lib.from_dict(TrainConfig, d, "bench_input")
  run_dir = root / f"run-{time.time_ns()}"
  trainer = Trainer(cfg, run_dir).setup()
  try:
    name = trainer.train_tasks[0].name
    loader = trainer.loader
    host_s = []
    for step in range(args.steps):
      t0 = time.perf_counter()
      jax.block_until_ready(loader.device_batch(loader.host_batch(step)[1]))
      host_s.append(time.perf_counter() - t0)
    step_fn = trainer.train_step_for(trainer.tasks[0])
    batch = loader.device_batch(loader.host_batch(0)[1])
    state = trainer.state
    step_s = []
    for i in range(args.steps // 2 + 2):
      t0 = time.perf_counter()
      state, metrics = step_fn(state, batch)
      jax.block_until_ready(metrics)
      if i >= 2:
        step_s.append(time.perf_counter() - t0)
    trainer.state = state
    stamps = []
    orig = Trainer._log_train

    def log_train(self, book, progress, step, task, metrics):
      stamps.append(time.perf_counter())
      return orig(self, book, progress, step, task, metrics)

    Trainer._log_train = log_train
    trainer.run()
    waits = list(getattr(loader, "recent_waits", []))
  finally:
    trainer.ckpt.close()
  loop = np.diff(stamps[5:]) if len(stamps) > 6 else np.array([np.nan])
  ms = lambda xs: round(float(np.median(xs)) * 1e3, 3)  # noqa: E731
  print(json.dumps({"task": name, "train_examples": args.train_examples, "batch_size": args.batch_size,
                    "max_length": args.max_length, "steps": args.steps, "device": jax.devices()[0].device_kind,
                    "host_build_ms": ms(host_s), "step_ms": ms(step_s), "loop_ms": ms(loop),
                    "loop_wait_ms": ms(waits[5:]) if len(waits) > 5 else None}, indent=1))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
