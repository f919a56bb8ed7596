"""`xtjax bench train`: step time, throughput, model FLOPs and MFU of the trainer's own step.

The step is what `xtjax train` runs (`xtjax.train.program`: the train step with gradient accumulation and
the NaN guard, the optimizer, the state sharded like a run's), on a classification fine-tune of random
tokens (or any head: `text_to_text` with `target_len` target tokens; LoRA with `lora`). Timings exclude
compilation (reported apart) and warm-up steps; each timed step blocks on its loss. `train_losses` runs the
same step a fixed number of times and returns every loss (a numerical check across devices).
"""

from __future__ import annotations

import time
from typing import Any

import jax
import numpy as np

from xtjax.errors import ConfigError
from xtjax.models.heads import HeadConfig, head_kind
from xtjax.models.lora_config import LoraConfig
from xtjax.parallel.batching import put_process_batch
from xtjax.parallel.mesh import MeshConfig, make_mesh
from xtjax.parallel.rules import DEFAULT_RULES
from xtjax.perf import flops as F
from xtjax.perf.profile import kernel_profile
from xtjax.perf.timing import device_info, percentiles_ms, random_inputs, time_calls
from xtjax.runs.schema import OptimConfig
from xtjax.train.program import build_train_program
from xtjax.train.setup import EncoderStart


def _compiled_step(family, cfg, *, batch_size, seq_len, total_steps, head, target_len, encoder_params, source, seed,
                   dropout, rng_impl, optim_cfg, mesh, rules, lora):
  """(compiled step, state, batch, compile seconds): the trainer's step on random tokens, as `xtjax train` builds it."""
  if batch_size % optim_cfg.grad_accum_steps:
    raise ConfigError(f"--batch-size {batch_size} is not divisible by --grad-accum-steps {optim_cfg.grad_accum_steps}")
  mesh = mesh if mesh is not None else make_mesh(MeshConfig())
  program = build_train_program(family, cfg, {"cls": head}, mesh, rules, optim_cfg=optim_cfg, total_steps=total_steps,
                                batch_size=batch_size, seed=seed, lora=lora, rng_impl=rng_impl, dropout=dropout)
  start = None if encoder_params is None else EncoderStart(family, cfg, encoder_params, None, source)
  state = program.init_state(program.initial_params(start))
  rng = np.random.default_rng(seed)
  host = random_inputs(rng, cfg.vocab_size, (batch_size, seq_len))
  if head_kind(head.type).seq2seq:
    host["labels"] = rng.integers(5, cfg.vocab_size, (batch_size, target_len)).astype(np.int32)
  else:
    host["labels"] = rng.integers(0, head.num_labels, (batch_size,)).astype(np.int32)
  host["example_mask"] = np.ones((batch_size,), np.int32)
  batch = put_process_batch(host, mesh, rules)
  t0 = time.perf_counter()
  compiled = program.train_step("cls").lower(state, batch).compile()
  return compiled, state, batch, time.perf_counter() - t0


def program_bytes(compiled) -> int | None:
  """Device bytes one compiled program needs (arguments + outputs + temporaries, less donated aliases)."""
  mem = compiled.memory_analysis()
  if mem is None:
    return None
  return int(mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
             - mem.alias_size_in_bytes)


def train_losses(family, cfg, *, steps: int = 20, batch_size: int = 8, seq_len: int = 64, num_labels: int = 3,
                 seed: int = 0, mesh=None, rules=DEFAULT_RULES, optim_cfg: OptimConfig = OptimConfig(),
                 dropout: bool = False) -> list[float]:
  """The loss of each of `steps` trainer steps on one fixed random batch (same seed: the same start anywhere)."""
  compiled, state, batch, _ = _compiled_step(
      family, cfg, batch_size=batch_size, seq_len=seq_len, total_steps=steps,
      head=HeadConfig("classification", num_labels), target_len=0, encoder_params=None, source="", seed=seed,
      dropout=dropout, rng_impl="threefry2x32", optim_cfg=optim_cfg, mesh=mesh, rules=rules, lora=None)
  losses = []
  for _ in range(steps):
    state, metrics = compiled(state, batch)
    losses.append(float(jax.device_get(metrics["loss"])))
  return losses


def bench_train(family, cfg, *, batch_size: int = 16, seq_len: int = 128, steps: int = 10, warmup: int = 2,
                num_labels: int = 3, encoder_params=None, source: str = "", seed: int = 0, dropout: bool = True,
                rng_impl: str = "threefry2x32", optim_cfg: OptimConfig = OptimConfig(), mesh=None,
                rules=DEFAULT_RULES, profile: bool = False, trace_dir: str | None = None,
                head: HeadConfig | None = None, target_len: int = 0, lora: LoraConfig | None = None) -> dict[str, Any]:
  """Step time, throughput, model FLOPs per step, achieved FLOP/s and MFU of the trainer's step.

  `rng_impl` as TrainConfig.dropout_rng; `optim_cfg` as TrainConfig.optim (grad_accum_steps splits
  the batch into micro-batches inside the step); `profile`: a per-HLO-op breakdown (`xtjax.perf.profile`).
  `head`: default a `num_labels`-way classifier; a text_to_text head trains on `target_len` target tokens.
  `lora`: a LoraConfig; its model FLOPs are 2x the forward (no weight gradients for the frozen base).
  """
  head = head or HeadConfig("classification", num_labels)
  compiled, state, batch, compile_s = _compiled_step(
      family, cfg, batch_size=batch_size, seq_len=seq_len, total_steps=warmup + steps, head=head,
      target_len=target_len, encoder_params=encoder_params, source=source, seed=seed, dropout=dropout,
      rng_impl=rng_impl, optim_cfg=optim_cfg, mesh=mesh, rules=rules, lora=lora)

  last = {}

  def one():
    nonlocal state
    state, metrics = compiled(state, batch)
    last["metrics"] = jax.block_until_ready(metrics)

  times = time_calls(one, steps, warmup)
  lat = percentiles_ms(times)
  sec = lat["p50"] / 1e3
  prof = kernel_profile(one, 3, compiled.as_text(), trace_dir=trace_dir) if profile else None
  fwd = F.forward_flops(cfg, batch_size, seq_len, head.type, head.num_labels, target_len=target_len)
  model_flops = (2 if lora is not None else 3) * fwd
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
          "final_loss": metrics["loss"], "finite": bool(metrics["finite"]), "profile": prof,
          "head_type": head.type, "target_len": target_len, "lora": lora is not None,
          "program_bytes": program_bytes(compiled)}
