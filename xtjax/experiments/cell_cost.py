"""Latency and cost of a sweep cell, measured on the separate inference path after its target phase.

`latency.json` in the target run directory: p50 / p99 latency at batch 1, throughput at the run's eval
batch size (each over several timed rounds, kept in `repeats`, so the report states a spread), compile time, on this machine's device kind (the one that trained it), with the model's
FLOPs per example; `xtjax report` puts it next to the training time of the cell's runs.
Equal architectures should show equal latency whatever their intermediate training; the report
shows it, so "1 vs 10 intermediate epochs against latency" is answered with measured numbers.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from etils import epath

from xtjax.io_utils import write_text_atomic

log = logging.getLogger(__name__)

LATENCY_FILE = "latency.json"


def measure_latency(run_dir: epath.Path, iters: int = 20, warmup: int = 2, repeats: int = 5) -> dict[str, Any]:
  """Benchmarks the run's best checkpoint (its first head; the encoder's embeddings for retrieval runs).

  `repeats` timed rounds of `iters` calls each after the compiling call and warm-up, so one cell states a
  spread (`repeats` in the file); the top-level numbers are the median round's."""
  from xtjax.runs.info import read_run_config
  from xtjax.evaluation.buckets import Buckets
  from xtjax.infer.bench import bench_infer
  from xtjax.infer.engine import InferenceEngine
  from xtjax.parallel.mesh import MeshConfig

  config_path = run_dir / "config.yaml"
  cfg = read_run_config(run_dir)
  batch = cfg.eval_batch_size
  length = cfg.features.max_length
  buckets = Buckets((1, batch), (length,))
  mesh = MeshConfig(devices=1)  # latency of one device; throughput scales with data parallelism
  best = run_dir / "best"
  if best.is_dir() and any(p.name.isdigit() for p in best.iterdir()):
    engine = InferenceEngine.from_run(run_dir, buckets=buckets, mesh=mesh)
  else:  # an evaluation-only phase (retrieval): the exported encoder's embeddings
    engine = InferenceEngine.from_model(run_dir / "model", buckets=buckets, mesh=mesh)
  # The programs compile in the first round only (the engine keeps them); every round is timed after warm-up.
  results = [bench_infer(engine, batch_sizes=(1, batch), seq_lens=(length,), iters=iters, warmup=warmup)
             for _ in range(max(repeats, 1))]
  rounds = []
  for result in results:
    by_batch = {r["batch_size"]: r for r in result["results"]}
    rounds.append({"batch1_p50_ms": by_batch[1]["latency_ms"]["p50"], "batch1_p99_ms": by_batch[1]["latency_ms"]["p99"],
                   "examples_per_s": by_batch[batch]["examples_per_s"]})
  first = results[0]
  median = sorted(rounds, key=lambda r: r["batch1_p50_ms"])[len(rounds) // 2]
  out = {"mode": first["mode"], "task": first["task"], "device_kind": first["device"]["device_kind"],
         "seq_len": length, "eval_batch_size": batch, "iters": iters, "warmup": warmup, **median,
         "repeats": {k: [r[k] for r in rounds] for k in median},
         "compile_seconds": first["compile"]["seconds"],
         "flops_per_example": by_batch[1]["model_flops_per_step"], "config": str(config_path)}
  write_text_atomic(run_dir / LATENCY_FILE, json.dumps(out, indent=2, sort_keys=True) + "\n")
  return out
