"""`xtjax bench train`: step time, throughput, model FLOPs and MFU of the trainer's own step.

The step is what `xtjax train` runs (`xtjax.train.program`: the train step with gradient accumulation and
the NaN guard, the optimizer, the state sharded like a run's), on a classification fine-tune of random
tokens. Timings exclude compilation (reported apart) and warm-up steps; each timed step blocks on its loss.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import numpy as np

from xtjax.errors import ConfigError
from xtjax.models.heads import HeadConfig
from xtjax.parallel.batching import put_process_batch
from xtjax.parallel.mesh import MeshConfig, make_mesh
from xtjax.parallel.rules import DEFAULT_RULES
from xtjax.perf import flops as F
from xtjax.perf.profile import kernel_profile
from xtjax.perf.timing import device_info, percentiles_ms, random_inputs, time_calls
from xtjax.runs.schema import OptimConfig
from xtjax.train.program import build_train_program
from xtjax.train.setup import EncoderStart


def bench_train(family, cfg, *, batch_size: int = 16, seq_len: int = 128, steps: int = 10, warmup: int = 2,
                num_labels: int = 3, encoder_params=None, source: str = "", seed: int = 0, dropout: bool = True,
                rng_impl: str = "threefry2x32", optim_cfg: OptimConfig = OptimConfig(), mesh=None,
                rules=DEFAULT_RULES, profile: bool = False, trace_dir: str | None = None) -> dict[str, Any]:
  """Step time, throughput, model FLOPs per step, achieved FLOP/s and MFU of the trainer's step.

  `rng_impl` as TrainConfig.dropout_rng; `optim_cfg` as TrainConfig.optim (grad_accum_steps splits
  the batch into micro-batches inside the step); `profile`: a per-HLO-op breakdown (`xtjax.perf.profile`).
  """
  if batch_size % optim_cfg.grad_accum_steps:
    raise ConfigError(f"--batch-size {batch_size} is not divisible by --grad-accum-steps {optim_cfg.grad_accum_steps}")
  mesh = mesh if mesh is not None else make_mesh(MeshConfig())
  program = build_train_program(family, cfg, {"cls": HeadConfig("classification", num_labels)}, mesh, rules,
                                optim_cfg=optim_cfg, total_steps=warmup + steps, batch_size=batch_size, seed=seed,
                                rng_impl=rng_impl, dropout=dropout)
  start = None if encoder_params is None else EncoderStart(family, cfg, encoder_params, None, source)
  state = program.init_state(program.initial_params(start))
  rng = np.random.default_rng(seed)
  host = random_inputs(rng, cfg.vocab_size, (batch_size, seq_len))
  host["labels"] = rng.integers(0, num_labels, (batch_size,)).astype(np.int32)
  host["example_mask"] = np.ones((batch_size,), np.int32)
  batch = put_process_batch(host, mesh, rules)
  t0 = time.perf_counter()
  compiled = program.train_step("cls").lower(state, batch).compile()
  compile_s = time.perf_counter() - t0

  last = {}

  def one():
    nonlocal state
    state, metrics = compiled(state, batch)
    last["metrics"] = jax.block_until_ready(metrics)

  times = time_calls(one, steps, warmup)
  lat = percentiles_ms(times)
  sec = lat["p50"] / 1e3
  prof = kernel_profile(one, 3, compiled.as_text(), trace_dir=trace_dir) if profile else None
  model_flops = F.train_flops(cfg, batch_size, seq_len, "classification", num_labels)
  dtype = cfg.dtype
  peak, peak_src = F.peak_flops(dtype=dtype)
  achieved = model_flops / sec
  metrics = {k: float(v) for k, v in jax.device_get(last["metrics"]).items()}
  return {"kind": "train", "model": source, "family": family.name, "dtype": dtype, "batch_size": batch_size,
          "seq_len": seq_len, "steps": steps, "warmup": warmup, "dropout": dropout, "rng_impl": rng_impl,
          "grad_accum_steps": optim_cfg.grad_accum_steps, "device": device_info(), "compile_seconds": compile_s,
          "step_time_ms": lat, "examples_per_s": batch_size / sec, "tokens_per_s": batch_size * seq_len / sec,
          "model_flops_per_step": model_flops, "achieved_flops_per_s": achieved, "peak_flops_per_s": peak,
          "peak_source": peak_src, "mfu": achieved / peak if peak == peak else None,
          "final_loss": metrics["loss"], "finite": bool(metrics["finite"]), "profile": prof}
