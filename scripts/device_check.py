"""One prepared accelerator check: xtjax against PyTorch on the same GPU, in the same run, at the study's shapes.

Random-initialised models (no downloads: configs from xtjax presets, the PyTorch side from the same config
through `family.hf_config_from`), each timed after warm-up (compilation apart), each against transformers
in this process on the same device:
  - XLM-R large classification training step, bf16, 32 x 128 and 32 x 384 (xtjax's trainer step, as
    `xtjax bench train`; PyTorch: XLMRobertaForSequenceClassification, bf16 autocast, SDPA, AdamW);
  - its inference: batch-1 p50/p99 latency and batch-64 throughput (xtjax's inference engine, as
    `xtjax bench infer`; PyTorch under `inference_mode`);
  - mT5-base text-to-text training step 512 -> 128 with Adafactor (MT5ForConditionalGeneration);
  - a Llama-3.2-1B-shaped LoRA step (q, v; rank 16) at 512 tokens and greedy generation tokens/s with the
    KV cache (LlamaForSequenceClassification / LlamaForCausalLM, adapters added by hand);
  - a numerical check: 20 training steps on the accelerator against the same 20 on the CPU.
MFU is against the device's dense bf16 peak (`xtjax.perf.flops.PEAK_BF16`: H100 SXM 989 TFLOP/s), with
model FLOPs as `xtjax.perf.flops` counts them (3x forward; LoRA 2x: no weight gradients for the base).
Memory: xtjax's compiled step (arguments + outputs + temporaries, `memory_analysis`) and the process peak
so far (`memory_stats`), PyTorch's `max_memory_allocated` per piece. The whole run keeps to `--budget-s`
(default 330 s): a piece whose estimate no longer fits prints one line and is skipped.

  python scripts/device_check.py --out runs/device_check          # on the GPU (about 6 minutes)
  python scripts/device_check.py --smoke --out /tmp/dc            # tiny shapes on CPU, seconds (the test)

Writes <out>/device_check.json and <out>/device_check.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# PyTorch shares the GPU with JAX in this process: JAX allocates on demand instead of taking 75% up front.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # PyTorch on a shared CPU (smoke): see xtjax/infer/torch_compare.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_BUDGET_S = 330.0  # of the 6 minutes a full run may take on an H100 (a second try fits the device time)
LOSS_RTOL = 0.02  # bf16 (8-bit mantissa, 2^-8 = 0.4% per rounding) over 20 updates, two compilers' op orders
LORA_TARGETS = (r"encoder/layers/\d+/attention/(q|v)/kernel",)


@dataclasses.dataclass(frozen=True)
class Shapes:
  """Every size the check runs at (FULL: the study's; SMOKE: tiny, for CPU)."""

  xlmr: str = "xlmr-large"
  xlmr_overrides: dict = dataclasses.field(default_factory=dict)
  train_shapes: tuple = ((32, 128), (32, 384))
  infer_len: int = 128
  infer_batch: int = 64
  mt5: str = "mt5-base"
  mt5_overrides: dict = dataclasses.field(default_factory=dict)
  mt5_shape: tuple = (16, 512, 128)  # batch, source, target
  llama: str = "llama-3.2-1b"
  llama_overrides: dict = dataclasses.field(default_factory=dict)
  lora_shape: tuple = (8, 512)
  gen_shape: tuple = (1, 128, 128)  # batch, prompt, new tokens
  numerics: str = "xlmr-bench-small"
  numerics_overrides: dict = dataclasses.field(default_factory=dict)
  numerics_shape: tuple = (8, 128)
  numerics_steps: int = 20
  warmup: int = 2
  steps: int = 10
  latency_iters: int = 30
  # Seconds each piece is expected to take on an H100, compilation and model creation included.
  estimates: dict = dataclasses.field(default_factory=lambda: {
      "xlmr_train_384": 50, "xlmr_train_128": 40, "numerics": 25, "xlmr_infer": 40, "mt5_train": 55,
      "llama_lora": 55, "llama_generate": 45, "torch_compile": 90})


_TINY_ENC = {"vocab_size": 512, "hidden_size": 64, "num_layers": 1, "num_heads": 4, "intermediate_size": 128}
SMOKE = Shapes(
    xlmr_overrides=_TINY_ENC, train_shapes=((4, 16), (2, 32)), infer_len=16, infer_batch=4,
    mt5_overrides={"vocab_size": 512, "d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 1,
                   "num_decoder_layers": 1, "num_heads": 4},
    mt5_shape=(2, 16, 8),
    llama_overrides={"vocab_size": 512, "hidden_size": 64, "intermediate_size": 128, "num_layers": 1,
                     "num_heads": 4, "num_kv_heads": 2, "head_dim": 16, "bos_token_id": 0, "eos_token_ids": (2,)},
    lora_shape=(2, 16), gen_shape=(1, 8, 4), numerics_overrides=_TINY_ENC, numerics_shape=(4, 16),
    numerics_steps=20, warmup=1, steps=2, latency_iters=3, estimates={})
FULL = Shapes()


class Budget:
  """The run's deadline; `fits(piece)` says (and prints) whether a piece's estimate still fits."""

  def __init__(self, seconds: float, estimates: dict):
    self.start, self.seconds, self.estimates = time.perf_counter(), seconds, estimates

  def left(self) -> float:
    return self.seconds - (time.perf_counter() - self.start)

  def fits(self, piece: str) -> bool:
    need = self.estimates.get(piece, 0)
    if self.left() < need:
      print(f"skip {piece}: {self.left():.0f} s of the {self.seconds:.0f} s budget left, it needs about {need} s")
      return False
    return True


# ---- shared ----------------------------------------------------------------------------------------


def _model(preset: str, overrides: dict):
  from xtjax.infer import build
  from xtjax.models import registry

  family, cfg = registry.preset(preset)
  return family, build.with_overrides(build.with_dtype(cfg, "bfloat16"), overrides)


def _mesh(devices=None):
  from xtjax.parallel.mesh import MeshConfig, make_mesh

  return make_mesh(MeshConfig(devices=1), devices)


def _torch_device() -> str:
  import torch

  return "cuda" if torch.cuda.is_available() else "cpu"


def _torch_reset() -> None:
  import torch

  gc.collect()
  if torch.cuda.is_available():
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()


def _torch_peak() -> int | None:
  import torch

  return int(torch.cuda.max_memory_allocated()) if torch.cuda.is_available() else None


def _jax_peak() -> int | None:
  import jax

  stats = jax.devices()[0].memory_stats()
  return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None


def _p50(fn: Callable, iters: int, warmup: int) -> dict:
  from xtjax.perf.timing import percentiles_ms, time_calls

  return percentiles_ms(time_calls(fn, iters, warmup))


def _row(check: str, shape: str, metric: str, xtjax: float, torch: float | None, higher_is_better: bool = True,
         **extra) -> dict:
  ratio = None if not torch else xtjax / torch
  return {"check": check, "shape": shape, "metric": metric, "xtjax": xtjax, "torch": torch, "ratio": ratio,
          "better": "higher" if higher_is_better else "lower", **extra}


def _train_rows(check: str, shape: str, jx: dict, torch_ms: dict, torch_peak, batch: int) -> list[dict]:
  """examples/s, step time and MFU rows of one training comparison (the same model FLOPs on both sides)."""
  t_sec = torch_ms["p50"] / 1e3
  mem = {"xtjax_program_bytes": jx["program_bytes"], "xtjax_process_peak_bytes": _jax_peak(),
         "torch_peak_bytes": torch_peak}
  peak = jx["peak_flops_per_s"]
  t_mfu = jx["model_flops_per_step"] / t_sec / peak if peak == peak else None
  return [_row(check, shape, "examples/s", jx["examples_per_s"], batch / t_sec, **mem,
               compile_seconds=jx["compile_seconds"], final_loss=jx["final_loss"]),
          _row(check, shape, "step ms (p50)", jx["step_time_ms"]["p50"], torch_ms["p50"], False),
          _row(check, shape, "MFU", jx["mfu"], t_mfu, peak_flops_per_s=peak, peak_source=jx["peak_source"])]


# ---- pieces ----------------------------------------------------------------------------------------


def xlmr_train(s: Shapes, state: dict, batch: int, length: int, torch_compile: bool = False) -> list[dict]:
  from xtjax.infer.torch_compare import _Torch
  from xtjax.train.bench import bench_train

  family, cfg = _model(s.xlmr, s.xlmr_overrides)
  jx = bench_train(family, cfg, batch_size=batch, seq_len=length, steps=s.steps, warmup=s.warmup, mesh=_mesh(),
                   source=s.xlmr)
  _torch_reset()
  side = state.get("xlmr_torch")
  if side is None:
    side = state["xlmr_torch"] = _Torch(family, cfg, batch, length, 3, True, True, device=_torch_device(),
                                        attn="sdpa")
  side.use_inputs(batch, length)
  check = "XLM-R large train bf16"
  if torch_compile:
    import torch

    side.model = torch.compile(side.model)
    check += " (torch.compile)"
  ms = _p50(side.train, s.steps, s.warmup)
  rows = _train_rows(check, f"{batch} x {length}", jx, ms, _torch_peak(), batch)
  rows[0]["torch_attention"] = side.model.config._attn_implementation  # what transformers actually runs
  return rows


def xlmr_infer(s: Shapes, state: dict) -> list[dict]:
  from xtjax.evaluation.buckets import Buckets
  from xtjax.infer.bench import bench_infer
  from xtjax.infer.engine import InferenceEngine
  from xtjax.infer.torch_compare import _Torch
  from xtjax.models.heads import HeadConfig

  family, cfg = _model(s.xlmr, s.xlmr_overrides)
  B, L = s.infer_batch, s.infer_len
  engine = InferenceEngine.random(family, cfg, heads={"cls": HeadConfig("classification", 3)}, mesh=_mesh(),
                                  buckets=Buckets((1, B), (L,)))
  res = bench_infer(engine, batch_sizes=(1, B), seq_lens=(L,), warmup=s.warmup, iters=s.latency_iters)
  one, many = res["results"]
  jpeak = _jax_peak()
  del engine
  _torch_reset()
  side = state.get("xlmr_torch") or _Torch(family, cfg, B, L, 3, True, True, device=_torch_device(), attn="sdpa")
  state["xlmr_torch"] = side
  side.use_inputs(B, L)
  lat = _p50(side.infer_one, s.latency_iters, s.warmup)
  thr = _p50(side.infer, max(s.steps, 3), s.warmup)
  mem = {"xtjax_process_peak_bytes": jpeak, "torch_peak_bytes": _torch_peak()}
  check = "XLM-R large inference bf16"
  return [_row(check, f"1 x {L}", "latency p50 ms", one["latency_ms"]["p50"], lat["p50"], False, **mem),
          _row(check, f"1 x {L}", "latency p99 ms", one["latency_ms"]["p99"], lat["p99"], False),
          _row(check, f"{B} x {L}", "examples/s", many["examples_per_s"], B / (thr["p50"] / 1e3))]


def mt5_train(s: Shapes, state: dict) -> list[dict]:
  import numpy as np
  from transformers.optimization import Adafactor

  from xtjax.infer.torch_compare import TorchStep, torch_model
  from xtjax.models.heads import HeadConfig
  from xtjax.runs.schema import OptimConfig
  from xtjax.train.bench import bench_train

  family, cfg = _model(s.mt5, s.mt5_overrides)
  B, S, T = s.mt5_shape
  optim_cfg = OptimConfig(optimizer="adafactor", learning_rate=1e-3, schedule="constant", weight_decay=0.0)
  jx = bench_train(family, cfg, batch_size=B, seq_len=S, steps=s.steps, warmup=s.warmup, mesh=_mesh(),
                   head=HeadConfig("text_to_text"), target_len=T, optim_cfg=optim_cfg, source=s.mt5)
  state.pop("xlmr_torch", None)
  _torch_reset()
  model = torch_model("MT5ForConditionalGeneration", family.hf_config_from(cfg), _torch_device())
  opt = Adafactor(model.parameters(), lr=1e-3, scale_parameter=False, relative_step=False, warmup_init=False)
  side = TorchStep(model, opt, bf16=True)
  rng = np.random.default_rng(0)
  ids = rng.integers(5, cfg.vocab_size, (B, S))
  side.batch = side.tensors(input_ids=ids, attention_mask=np.ones_like(ids), labels=rng.integers(5, cfg.vocab_size, (B, T)))
  ms = _p50(side.train, s.steps, s.warmup)
  return _train_rows("mT5-base text-to-text train bf16 (Adafactor)", f"{B} x {S} -> {T}", jx, ms, _torch_peak(), B)


def _torch_lora(model, targets=("q_proj", "v_proj"), rank: int = 16, alpha: float = 32.0):
  """Adapters (A random, B zero; scaled alpha / rank) on the named nn.Linear layers; the base frozen,
  the classification head (`score`) trained, as xtjax's LoRA."""
  import torch

  class Lora(torch.nn.Module):
    def __init__(self, base):
      super().__init__()
      self.base = base
      self.a = torch.nn.Parameter(torch.randn(rank, base.in_features, device=base.weight.device) / rank)
      self.b = torch.nn.Parameter(torch.zeros(base.out_features, rank, device=base.weight.device))

    def forward(self, x):
      return self.base(x) + (x @ self.a.T @ self.b.T) * (alpha / rank)

  for p in model.parameters():
    p.requires_grad_(False)
  for name, mod in list(model.named_modules()):
    for child in targets:
      if isinstance(getattr(mod, child, None), torch.nn.Linear):
        setattr(mod, child, Lora(getattr(mod, child)))
  for p in model.score.parameters():
    p.requires_grad_(True)
  return model


def llama_lora(s: Shapes, state: dict) -> list[dict]:
  import numpy as np
  import torch

  from xtjax.infer.torch_compare import TorchStep, torch_model
  from xtjax.models.lora import LoraConfig
  from xtjax.runs.schema import OptimConfig
  from xtjax.train.bench import bench_train

  family, cfg = _model(s.llama, s.llama_overrides)
  B, L = s.lora_shape
  lora = LoraConfig(targets=LORA_TARGETS, rank=16, alpha=32.0)
  jx = bench_train(family, cfg, batch_size=B, seq_len=L, steps=s.steps, warmup=s.warmup, mesh=_mesh(), lora=lora,
                   optim_cfg=OptimConfig(learning_rate=5e-4), dropout=False, source=s.llama)
  _torch_reset()
  model = _torch_lora(torch_model("LlamaForSequenceClassification", family.hf_config_from(cfg), _torch_device(),
                                  num_labels=3, pad_token_id=0))
  trained = [p for p in model.parameters() if p.requires_grad]
  side = TorchStep(model, torch.optim.AdamW(trained, lr=5e-4, weight_decay=0.01), bf16=True)
  rng = np.random.default_rng(0)
  ids = rng.integers(5, cfg.vocab_size, (B, L))
  side.batch = side.tensors(input_ids=ids, attention_mask=np.ones_like(ids), labels=rng.integers(0, 3, (B,)))
  ms = _p50(side.train, s.steps, s.warmup)
  return _train_rows("Llama-3.2-1B LoRA (q, v; r 16) train bf16", f"{B} x {L}", jx, ms, _torch_peak(), B)


def llama_generate(s: Shapes, state: dict) -> list[dict]:
  import numpy as np
  import torch

  from xtjax.evaluation.buckets import Buckets
  from xtjax.infer.engine import InferenceEngine
  from xtjax.infer.torch_compare import torch_model

  B, P, N = s.gen_shape
  engine = InferenceEngine.from_preset(s.llama, dtype="bfloat16", overrides=s.llama_overrides, mesh=_mesh(),
                                       buckets=Buckets((B,), (P,)))
  family, cfg = engine.family, engine.config
  ids = np.random.default_rng(0).integers(5, cfg.vocab_size, (B, P)).astype(np.int32)
  mask = np.ones_like(ids)
  out = engine.generate(ids, mask, max_new_tokens=N)
  new = int(np.asarray(out.lengths).sum())
  jt = _p50(lambda: engine.generate(ids, mask, max_new_tokens=N), max(s.steps // 2, 2), s.warmup)
  jpeak = _jax_peak()
  del engine
  _torch_reset()
  model = torch_model("LlamaForCausalLM", family.hf_config_from(cfg), _torch_device()).eval()
  t_ids = torch.from_numpy(ids.astype(np.int64)).to(model.device)
  t_mask = torch.ones_like(t_ids)

  def run():
    with torch.inference_mode(), torch.autocast(model.device.type, dtype=torch.bfloat16):
      model.generate(input_ids=t_ids, attention_mask=t_mask, max_new_tokens=N, min_new_tokens=N, do_sample=False,
                     use_cache=True, pad_token_id=0)
    if model.device.type == "cuda":
      torch.cuda.synchronize()

  tt = _p50(run, max(s.steps // 2, 2), s.warmup)
  return [_row("Llama-3.2-1B greedy generation bf16 (KV cache)", f"{B} x {P} + {N}", "new tokens/s",
               new / (jt["p50"] / 1e3), B * N / (tt["p50"] / 1e3), new_tokens_xtjax=new,
               xtjax_process_peak_bytes=jpeak, torch_peak_bytes=_torch_peak())]


def numerics(s: Shapes, state: dict) -> list[dict]:
  import jax

  from xtjax.runs.schema import OptimConfig
  from xtjax.train.bench import train_losses

  family, cfg = _model(s.numerics, s.numerics_overrides)
  B, L = s.numerics_shape
  kw = dict(steps=s.numerics_steps, batch_size=B, seq_len=L, optim_cfg=OptimConfig(learning_rate=1e-4))
  acc = train_losses(family, cfg, mesh=_mesh(), **kw)
  cpu = train_losses(family, cfg, mesh=_mesh(jax.devices("cpu")), **kw)
  worst = max(abs(a - c) / abs(c) for a, c in zip(acc, cpu))
  where = f"{jax.devices()[0].platform} vs cpu"
  return [_row(f"numerics: {s.numerics_steps} bf16 train steps, {where}", f"{B} x {L}",
               f"max relative loss difference (tolerance {LOSS_RTOL})", worst, None, False,
               passed=bool(worst <= LOSS_RTOL), losses=acc, losses_cpu=cpu)]


PIECES: dict[str, Callable] = {
    "xlmr_train_384": lambda s, st: xlmr_train(s, st, *s.train_shapes[1]),
    "xlmr_train_128": lambda s, st: xlmr_train(s, st, *s.train_shapes[0]),
    "numerics": numerics,
    "xlmr_infer": xlmr_infer,
    "mt5_train": mt5_train,
    "llama_lora": llama_lora,
    "llama_generate": llama_generate,
}
OPTIONAL = {"torch_compile": lambda s, st: xlmr_train(s, st, *s.train_shapes[0], torch_compile=True)}


# ---- output ----------------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
  import jax
  import jaxlib

  env = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
         "python": platform.python_version(), "jax": jax.__version__, "jaxlib": jaxlib.__version__,
         "device": jax.devices()[0].device_kind, "platform": jax.devices()[0].platform,
         "xla_flags": os.environ.get("XLA_FLAGS", "")}
  for mod in ("torch", "transformers", "flax", "optax"):
    try:
      env[mod] = __import__(mod).__version__
    except ImportError:
      env[mod] = None
  return env


def _fmt(v, metric: str) -> str:
  if v is None:
    return "-"
  if metric == "MFU":
    return f"{100 * v:.1f}%"
  return f"{v:.4g}"


def _gib(b) -> str:
  return "-" if b is None else f"{b / 2**30:.3g}"


def markdown(report: dict) -> str:
  e = report["environment"]
  lines = [f"Device: {e['device']} ({e['platform']}); {e['date']}; Python {e['python']}, jax {e['jax']}, "
           f"torch {e['torch']}, transformers {e['transformers']}; mode {report['mode']}; "
           f"{report['seconds']:.0f} s" + (f" of a {report['budget_s']:.0f} s budget." if report["budget_s"] is not None
                                           else " (no time budget)."), "",
           "| check | shape | metric | xtjax | PyTorch | xtjax / PyTorch | xtjax step GiB | xtjax peak GiB "
           "| PyTorch peak GiB |",
           "|---|---|---|---|---|---|---|---|---|"]
  for r in report["rows"]:
    ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x" + (" (lower is better)" if r["better"] == "lower"
                                                                      else "")
    lines.append(f"| {r['check']} | {r['shape']} | {r['metric']} | {_fmt(r['xtjax'], r['metric'])} | "
                 f"{_fmt(r['torch'], r['metric'])} | {ratio} | {_gib(r.get('xtjax_program_bytes'))} | "
                 f"{_gib(r.get('xtjax_process_peak_bytes'))} | {_gib(r.get('torch_peak_bytes'))} |")
  for name, why in report["skipped"].items():
    lines.append(f"| {name} | - | skipped: {why} | - | - | - | - | - | - |")
  return "\n".join(lines) + "\n"


def run_pieces(pieces: dict, shapes: Shapes, budget: Budget, smoke: bool, debug: bool) -> tuple[list, dict]:
  """(rows, {skipped piece: why}): each piece in turn while the budget allows; a missing module or a failure
  is one printed line and the others still run. Smoke mode compiles with XLA's optimisations off (CPU
  compile time is most of it; the numbers there only show that each piece runs)."""
  import jax

  optimise = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", smoke or optimise)
  rows, skipped, state = [], {}, {}
  try:
    for name, fn in pieces.items():
      if not budget.fits(name):
        skipped[name] = "time budget"
        continue
      t0 = time.perf_counter()
      try:
        got = fn(shapes, state)
      except ImportError as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"skip {name}: missing {why}")
        skipped[name] = f"missing: {why}"
        continue
      except Exception as e:  # one line per failed piece; the others still run and the table is written
        if debug:
          raise
        print(f"{name} failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        skipped[name] = f"failed: {type(e).__name__}"
        continue
      for r in got:
        r["piece"], r["piece_seconds"] = name, time.perf_counter() - t0
        ratio = "" if r["ratio"] is None else f"  ratio {r['ratio']:.2f}"
        print(f"{r['check']:<48} {r['shape']:<16} {r['metric']:<18} xtjax {_fmt(r['xtjax'], r['metric'])}"
              f"  torch {_fmt(r['torch'], r['metric'])}{ratio}")
      rows += got
  finally:
    jax.config.update("jax_disable_most_optimizations", optimise)
  return rows, skipped


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--smoke", action="store_true", help="tiny shapes (CPU, seconds): checks the script runs")
  p.add_argument("--out", default="runs/device_check", help="folder for device_check.json and .md")
  p.add_argument("--budget-s", type=float, default=None,
                 help="the whole run's time limit in seconds (default 330; --smoke: none)")
  p.add_argument("--only", default=None, help=f"comma-separated pieces ({','.join(PIECES)})")
  p.add_argument("--torch-compile", action="store_true",
                 help="also time torch.compile on the 32 x 128 training step if the budget allows")
  p.add_argument("--debug", action="store_true", help="a failing piece raises instead of printing one line")
  args = p.parse_args(argv)
  shapes = SMOKE if args.smoke else FULL
  names = list(PIECES) if not args.only else args.only.split(",")
  unknown = [n for n in names if n not in PIECES]
  if unknown:
    print(f"--only: unknown piece(s) {unknown}; pieces: {list(PIECES)}", file=sys.stderr)
    return 2
  pieces = {n: PIECES[n] for n in names}
  if args.torch_compile:
    pieces.update(OPTIONAL)
  budget_s = args.budget_s if args.budget_s is not None else (float("inf") if args.smoke else DEFAULT_BUDGET_S)
  budget = Budget(budget_s, shapes.estimates)
  rows, skipped = run_pieces(pieces, shapes, budget, args.smoke, args.debug)
  report = {"mode": "smoke" if args.smoke else "full", "budget_s": None if budget_s == float("inf") else budget_s,
            "seconds": time.perf_counter() - budget.start, "loss_rtol": LOSS_RTOL, "environment": environment(),
            "shapes": dataclasses.asdict(shapes), "rows": rows, "skipped": skipped}
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  (out / "device_check.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
  (out / "device_check.md").write_text(markdown(report))
  print(f"wrote {out / 'device_check.json'} and {out / 'device_check.md'} ({report['seconds']:.0f} s)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
