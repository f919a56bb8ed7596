"""Inference benchmarks: latency/throughput per (batch, length) bucket, and the benchmark output files
(JSON, CSV, plot) that `xtjax bench train` (`xtjax.train.bench`) writes too.

Timings exclude compilation (reported separately) and warm-up calls; every timed call ends with a
host transfer / `block_until_ready`, so latency is what a caller waits.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xtjax.infer.engine import InferenceEngine
from xtjax.models.generate import can_generate
from xtjax.perf import flops as F
from xtjax.perf.profile import kernel_profile
from xtjax.perf.timing import device_info, percentiles_ms, random_inputs, time_calls

log = logging.getLogger(__name__)


# ---- inference ---------------------------------------------------------------------------------------


def infer_mode(engine: InferenceEngine) -> str:
  """predict (task heads), generate (a bare mT5 / T5 or decoder-only LLM) or embed (a bare encoder)."""
  if engine.heads:
    return "predict"
  return "generate" if can_generate(engine.config) else "embed"


def bench_infer(engine: InferenceEngine, *, task: str | None = None, batch_sizes: Sequence[int] = (1, 8, 32),
                seq_lens: Sequence[int] = (128,), warmup: int = 2, iters: int = 20, max_new_tokens: int = 32,
                choices: int = 2, seed: int = 0, profile: bool = False, trace_dir: str | None = None) -> dict[str, Any]:
  """Latency percentiles and throughput for every (batch size, sequence length); compile time apart.

  `profile`: a per-HLO-op breakdown of the last (largest) shape.
  """
  mode = infer_mode(engine)
  if mode == "predict":
    task = task or sorted(engine.heads)[0]
    head = engine.head_type(task)
  else:
    head = None
  rng = np.random.default_rng(seed)
  cfg = engine.config
  rows, compile_rows = [], []
  for L in seq_lens:
    for B in batch_sizes:
      shape = (B, choices, L) if head == "multiple_choice" else (B, L)
      inputs = random_inputs(rng, cfg.vocab_size, shape)
      if mode == "predict":
        call = lambda: engine.predict(task, inputs)  # noqa: E731 - results are host numpy: blocking
        flops_step = F.forward_flops(cfg, B, L, head, engine.heads[task].num_labels, choices)
      elif mode == "embed":
        call = lambda: engine.embed(inputs["input_ids"], inputs["attention_mask"])  # noqa: E731
        flops_step = F.forward_flops(cfg, B, L, None)
      else:
        call = lambda: engine.generate(inputs["input_ids"], inputs["attention_mask"],  # noqa: E731
                                       max_new_tokens=max_new_tokens)
        flops_step = B * F.generate_flops(cfg, L, max_new_tokens)
      n_keys, before, t0 = len(engine.stats.keys), engine.stats.compile_seconds, time.perf_counter()
      first = call()  # compiles this shape's program
      main_key = engine.stats.keys[n_keys] if len(engine.stats.keys) > n_keys else None
      if mode == "generate":
        ttft_call = lambda: engine.generate(inputs["input_ids"], inputs["attention_mask"],  # noqa: E731
                                            max_new_tokens=1)
        ttft_call()
      compile_rows.append({"batch_size": B, "seq_len": L, "compile_seconds": engine.stats.compile_seconds - before,
                           "first_call_seconds": time.perf_counter() - t0})
      lat = percentiles_ms(time_calls(call, iters, warmup))
      sec = lat["p50"] / 1e3
      row = {"batch_size": B, "seq_len": L, "latency_ms": lat, "examples_per_s": B / sec,
             "tokens_per_s": B * L * (choices if head == "multiple_choice" else 1) / sec,
             "model_flops_per_step": flops_step, "achieved_flops_per_s": flops_step / sec}
      if mode == "generate":  # time to first token: encoder + one decoder step (max_new_tokens=1)
        new_tokens = int(np.asarray(first.lengths).sum())
        ttft = percentiles_ms(time_calls(ttft_call, iters, warmup))
        row.update({"time_to_first_token_ms": ttft, "new_tokens": new_tokens,
                    "generated_tokens_per_s": new_tokens / sec,
                    "decode_tokens_per_s": max(new_tokens - B, 0) / max(sec - ttft["p50"] / 1e3, 1e-9)})
      rows.append(row)
      log.info("infer B=%d L=%d: p50 %.2f ms, %.1f examples/s", B, L, lat["p50"], row["examples_per_s"])
  prof = None
  if profile:  # the last shape's main program
    exe = engine.programs.compiled[main_key or engine.stats.keys[-1]]
    prof = kernel_profile(call, 3, exe.as_text(), trace_dir=trace_dir)
  return {"kind": "infer", "mode": mode, "task": task, "head_type": head, "model": engine.source,
          "family": engine.family.name, "dtype": cfg.dtype, "device": device_info(),
          "warmup": warmup, "iters": iters, "max_new_tokens": max_new_tokens if mode == "generate" else None,
          "compile": {"seconds": engine.stats.compile_seconds,
                      "compilations": engine.stats.compilations, "cache_hits": engine.stats.cache_hits,
                      "per_shape": compile_rows},
          "results": rows, "profile": prof}


# ---- output ------------------------------------------------------------------------------------------


def flat_rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
  """One flat dict per measured configuration (for CSV)."""
  if result["kind"] == "train":
    r = {k: v for k, v in result.items() if not isinstance(v, Mapping)}
    r.update({f"step_time_ms_{k}": v for k, v in result["step_time_ms"].items()})
    return [r]
  rows = []
  for row in result["results"]:
    flat = {"mode": result["mode"], "dtype": result["dtype"]}
    for k, v in row.items():
      if isinstance(v, Mapping):
        flat.update({f"{k}_{q}": x for q, x in v.items()})
      else:
        flat[k] = v
    rows.append(flat)
  return rows


def write_outputs(result: Mapping[str, Any], out_dir: str | Path, name: str) -> dict[str, Path]:
  """`<name>.json`, `<name>.csv` and, for inference, `<name>.png` in `out_dir`."""
  out = Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  paths = {"json": out / f"{name}.json", "csv": out / f"{name}.csv"}
  paths["json"].write_text(json.dumps(result, indent=2, sort_keys=True, default=_jsonable) + "\n")
  rows = flat_rows(result)
  keys = list(dict.fromkeys(k for r in rows for k in r))
  with open(paths["csv"], "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
  if result["kind"] == "infer":
    png = plot_infer(result, out / f"{name}.png")
    if png is not None:
      paths["png"] = png
  return paths


def _jsonable(x):
  if isinstance(x, (np.integer,)):
    return int(x)
  if isinstance(x, (np.floating,)):
    return float(x)
  if dataclasses.is_dataclass(x):
    return dataclasses.asdict(x)
  return str(x)


def plot_infer(result: Mapping[str, Any], path: Path) -> Path | None:
  """Latency (p50) vs batch size per length, and throughput vs length per batch size."""
  try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
  except ImportError:
    log.warning("matplotlib is not installed (pip install 'xtjax[bench]'): no plot written")
    return None
  rows = result["results"]
  lens = sorted({r["seq_len"] for r in rows})
  batches = sorted({r["batch_size"] for r in rows})
  fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
  for L in lens:
    rs = sorted((r for r in rows if r["seq_len"] == L), key=lambda r: r["batch_size"])
    a.plot([r["batch_size"] for r in rs], [r["latency_ms"]["p50"] for r in rs], marker="o", label=f"len {L}")
  a.set_xlabel("batch size")
  a.set_ylabel("latency p50 (ms)")
  a.set_xscale("log", base=2)
  a.set_xticks(batches, [str(b) for b in batches])
  a.set_title("latency vs batch size")
  a.legend()
  for B in batches:
    rs = sorted((r for r in rows if r["batch_size"] == B), key=lambda r: r["seq_len"])
    b.plot([r["seq_len"] for r in rs], [r["examples_per_s"] for r in rs], marker="o", label=f"batch {B}")
  b.set_xlabel("sequence length")
  b.set_ylabel("examples / s")
  b.set_title("throughput vs sequence length")
  b.legend()
  fig.suptitle(f"{result['model']} ({result['mode']}, {result['dtype']}, {result['device']['device_kind']})")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path
