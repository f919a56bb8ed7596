"""Why the zero-shot evaluation path trails PyTorch at 384 tokens while the bench path leads: two causes, timed.

The bench path (`xtjax.infer.torch_compare`) runs a classification head, which reads the first token, so
the last encoder layer computes that position only; zero-shot QA runs a span head over every position.
And the CLI applies XLA:CPU's f32 flags (`xtjax.infer.xla_setup.tune_cpu_flags`) only to commands with
`--dtype`, so an evaluation inside `xtjax train` / `xtjax evaluate` runs without them. This script times
the same windows (random tokens, full masks, batch 32 x 384, a random 2-layer hidden-384 XLM-R as the
README's zero-shot measurement) through the engine's bucketed programs (`programs.head_outputs`, what
evaluation calls) with each head, against transformers' matching models in `no_grad`, interleaved, in
one child process per XLA flag setting (flags must be set before JAX starts). Prints time ratios
xtjax / PyTorch (above 1: xtjax slower). Run:  .venv/bin/python scripts/bench_eval_gap.py [--windows 128]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAPE = {"hidden_size": 384, "num_layers": 2, "num_heads": 12, "intermediate_size": 1536}


def child(windows: int, batch: int, length: int, rounds: int) -> dict:
  """Seconds per pass over `windows` windows for each (framework, head), best of `rounds` interleaved."""
  os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as torch_compare: torch's best on a shared CPU
  import numpy as np
  import torch

  from xtjax.evaluation.buckets import Buckets
  from xtjax.infer import build
  from xtjax.infer.engine import InferenceEngine
  from xtjax.infer.torch_compare import torch_model
  from xtjax.models import registry
  from xtjax.models.heads import HeadConfig
  from xtjax.parallel.mesh import MeshConfig
  from xtjax.perf.timing import time_calls

  torch.set_num_threads(os.cpu_count() or 1)
  family, cfg = registry.preset("xlmr-bench-small")
  cfg = build.with_overrides(build.with_dtype(cfg, "float32"), SHAPE)
  heads = {"span": HeadConfig("span"), "cls": HeadConfig("classification", 3)}
  engine = InferenceEngine.random(family, cfg, heads=heads, mesh=MeshConfig(devices=1),
                                  buckets=Buckets((batch,), (length,)))
  rng = np.random.default_rng(0)
  ids = rng.integers(5, cfg.vocab_size, (windows, length)).astype(np.int32)
  inputs = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
  hf = family.hf_config_from(cfg)
  hf.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
  t_models = {"span": torch_model("XLMRobertaForQuestionAnswering", hf).eval(),
              "cls": torch_model("XLMRobertaForSequenceClassification", hf, num_labels=3).eval()}
  t_ids, t_mask = torch.from_numpy(ids.astype(np.int64)), torch.ones(ids.shape, dtype=torch.int64)

  def xtjax(head):
    return lambda: engine.predict(head, inputs)

  def pytorch(head):
    def run():
      with torch.no_grad():
        for i in range(0, windows, batch):
          t_models[head](input_ids=t_ids[i:i + batch], attention_mask=t_mask[i:i + batch])
    return run

  calls = {f"{side} {head}": make(head) for head in heads for side, make in (("xtjax", xtjax), ("torch", pytorch))}
  best = {k: float("inf") for k in calls}
  for r in range(rounds):
    for name in (list(calls) if r % 2 == 0 else list(reversed(calls))):
      best[name] = min(best[name], min(time_calls(calls[name], 1, warmup=1 if r == 0 else 0)))
  return {"xla_flags": os.environ.get("XLA_FLAGS", ""), "seconds": best, "load_average": os.getloadavg()[0]}


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--windows", type=int, default=128)
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--length", type=int, default=384)
  p.add_argument("--rounds", type=int, default=3)
  p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  if args.child:
    print(json.dumps(child(args.windows, args.batch, args.length, args.rounds)))
    return 0
  from xtjax.infer.xla_setup import CPU_XLA_FLAGS_F32

  env = dict(os.environ, JAX_PLATFORMS="cpu", XTJAX_CPU_TUNING="0",
             PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
  results = {}
  for label, flags in (("no flags (evaluation today)", ""), ("f32 flags (--dtype commands)", " ".join(CPU_XLA_FLAGS_F32))):
    cmd = [sys.executable, __file__, "--child", "--windows", str(args.windows), "--batch", str(args.batch),
           "--length", str(args.length), "--rounds", str(args.rounds)]
    proc = subprocess.run(cmd, env=dict(env, XLA_FLAGS=flags), capture_output=True, text=True)
    if proc.returncode:
      print(f"{label}: child failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
      return 1
    results[label] = json.loads(proc.stdout.strip().splitlines()[-1])
  print(f"{args.windows} windows of {args.length} tokens, batch {args.batch}, f32, 2-layer hidden-384 XLM-R; "
        f"seconds per pass (best of {args.rounds}); ratio = xtjax / torch time (above 1: xtjax slower)")
  print(f"{'XLA flags':<30}{'head':<6}{'xtjax s':>9}{'torch s':>9}{'ratio':>7}{'load':>6}")
  for label, r in results.items():
    s = r["seconds"]
    for head in ("span", "cls"):
      print(f"{label:<30}{head:<6}{s['xtjax ' + head]:>9.3f}{s['torch ' + head]:>9.3f}"
            f"{s['xtjax ' + head] / s['torch ' + head]:>7.2f}{r['load_average']:>6.1f}")
  a, b = (results[k]["seconds"] for k in results)
  print(f"span / cls xtjax time (no flags): {a['xtjax span'] / a['xtjax cls']:.2f}; "
        f"flags speed-up of xtjax span: {a['xtjax span'] / b['xtjax span']:.2f}x")
  return 0


if __name__ == "__main__":
  sys.exit(main())
