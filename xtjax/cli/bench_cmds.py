"""`xtjax bench infer|train|compare-torch` and `xtjax predict`."""

from __future__ import annotations

import argparse
import json
import sys

DTYPES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "f32": "float32", "fp32": "float32", "float32": "float32"}


def _ints(text: str) -> list[int]:
  try:
    vals = [int(x) for x in text.split(",") if x.strip()]
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
  if not vals or min(vals) < 1:
    raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
  return vals


def _dtype(text: str) -> str:
  if text not in DTYPES:
    raise argparse.ArgumentTypeError(f"--dtype must be one of {sorted(DTYPES)}, got {text!r}")
  return DTYPES[text]


def _model_args(p, default_preset: str | None = None) -> None:
  g = p.add_mutually_exclusive_group(required=default_preset is None)
  g.add_argument("--model", help="run directory, xtjax model folder, Hugging Face folder or hub id")
  g.add_argument("--preset", default=default_preset,
                 help="randomly initialised preset (see `xtjax presets`), e.g. xlmr-bench-small")
  p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                 help="model config override for --preset, e.g. num_layers=2 (repeatable)")
  p.add_argument("--dtype", type=_dtype, default="float32", help="compute dtype: f32 or bf16")
  p.add_argument("--devices", type=int, default=-1, help="use the first N devices, data-parallel (-1: all)")
  p.add_argument("--profile", action="store_true", help="also break the step's time down by HLO op")
  p.add_argument("--trace-dir", default=None, help="with --profile: keep the jax.profiler trace here")
  p.add_argument("--json", action="store_true", help="print the result as JSON")
  p.add_argument("--out", default=None, help="folder for <name>.json, .csv and .png")


def register(sub) -> None:
  bench = sub.add_parser("bench", help="inference and training benchmarks")
  bsub = bench.add_subparsers(dest="bench_command", metavar="BENCH")
  bsub.required = True

  p = bsub.add_parser("infer", help="latency / throughput per batch size and sequence length")
  _model_args(p)
  p.add_argument("--task", default=None, help="head of a run to benchmark (default: the first)")
  p.add_argument("--batch-sizes", type=_ints, default=[1, 8, 32])
  p.add_argument("--seq-lens", type=_ints, default=[128])
  p.add_argument("--iters", type=int, default=20, help="timed calls per shape")
  p.add_argument("--warmup", type=int, default=2, help="untimed calls per shape after compiling")
  p.add_argument("--max-new-tokens", type=int, default=32, help="mT5 / T5 generation length")
  p.add_argument("--compilation-cache", default=None, help="persistent XLA compilation cache folder")
  p.set_defaults(func=run_infer)

  p = bsub.add_parser("train", help="train step time, throughput, model FLOPs and MFU")
  _model_args(p)
  p.add_argument("--batch-size", type=int, default=16)
  p.add_argument("--seq-len", type=int, default=128)
  p.add_argument("--steps", type=int, default=10, help="timed steps")
  p.add_argument("--warmup", type=int, default=2)
  p.add_argument("--num-labels", type=int, default=3)
  p.add_argument("--no-dropout", action="store_true", help="train without dropout")
  p.add_argument("--rng-impl", default="threefry2x32", choices=["threefry2x32", "hash"],
                 help="dropout PRNG, as the trainer's dropout_rng (hash: xtjax.models.prng, faster on CPU)")
  p.add_argument("--grad-accum-steps", type=int, default=1, help="micro-batches per step, as optim.grad_accum_steps")
  p.set_defaults(func=run_train)

  p = bsub.add_parser("compare-torch", help="xtjax vs transformers' PyTorch XLM-R, interleaved in one process")
  p.add_argument("--preset", default="xlmr-bench-small")
  p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE")
  p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "f32", "bf16", "both"])
  p.add_argument("--batch-size", type=int, default=16)
  p.add_argument("--seq-len", type=int, default=128)
  p.add_argument("--num-labels", type=int, default=3)
  p.add_argument("--rounds", type=int, default=5, help="alternating jax/torch rounds")
  p.add_argument("--train-steps", type=int, default=3, help="timed train steps per round and framework")
  p.add_argument("--infer-iters", type=int, default=5, help="timed batch inference calls per round")
  p.add_argument("--latency-iters", type=int, default=20, help="timed batch-1 calls per round")
  p.add_argument("--no-dropout", action="store_true")
  p.add_argument("--torch-omp-active", action="store_true",
                 help="keep OpenMP's default busy-waiting for torch (default: OMP_WAIT_POLICY=PASSIVE)")
  p.add_argument("--json", action="store_true")
  p.add_argument("--out", default=None)
  p.set_defaults(func=run_compare)

  p = sub.add_parser("predict", help="predictions of a fine-tuned run on a task's data (the inference engine)")
  p.add_argument("--checkpoint", required=True, help="run directory")
  p.add_argument("--task", required=True)
  p.add_argument("--data", default=None,
                 help="path pattern of the task's files, e.g. 'data/{split}.{lang}.tsv' (default: the run's source)")
  p.add_argument("--split", default="test")
  p.add_argument("--language", default="en")
  p.add_argument("--out", required=True, help="predictions file (the task's submission format)")
  p.add_argument("--dtype", type=_dtype, default=None)
  p.add_argument("--batch-sizes", type=_ints, default=[1, 8, 32])
  p.add_argument("--seq-lens", type=_ints, default=[32, 64, 128, 256, 512])
  p.add_argument("--devices", type=int, default=-1, help="use the first N devices, data-parallel (-1: all)")
  p.add_argument("--score", action="store_true", help="also score the predictions against the gold labels")
  p.set_defaults(func=run_predict)


def parse_overrides(items) -> dict:
  import yaml

  from xtjax.errors import ConfigError

  out = {}
  for item in items:
    if "=" not in item:
      raise ConfigError(f"--override {item!r} is not KEY=VALUE")
    k, v = item.split("=", 1)
    out[k] = yaml.safe_load(v)
  return out


def _emit(result: dict, args, name: str, summary: str) -> int:
  if result.get("profile"):
    from xtjax.perf.profile import format_profile

    summary += "\n" + format_profile(result["profile"])
  if args.out:
    from xtjax.infer.bench import write_outputs

    paths = write_outputs(result, args.out, name)
    summary += " -> " + ", ".join(str(p) for p in paths.values())
  if args.json:
    print(json.dumps(result, indent=2, sort_keys=True, default=str))
  else:
    print(summary)
  return 0


def _is_run(path) -> bool:
  from xtjax.io_utils import as_path

  return (as_path(path) / "config.yaml").exists() and (as_path(path) / "best").exists()


def run_infer(args: argparse.Namespace) -> int:
  from xtjax.infer.bench import bench_infer
  from xtjax.evaluation.buckets import Buckets
  from xtjax.infer.engine import InferenceEngine

  from xtjax.parallel.mesh import MeshConfig

  buckets = Buckets(tuple(args.batch_sizes), tuple(args.seq_lens))
  kw = dict(dtype=args.dtype, buckets=buckets, compilation_cache_dir=args.compilation_cache,
            mesh=MeshConfig(devices=args.devices))
  if args.preset:
    engine = InferenceEngine.from_preset(args.preset, overrides=parse_overrides(args.override), **kw)
  elif _is_run(args.model):
    engine = InferenceEngine.from_run(args.model, **kw)
  else:
    engine = InferenceEngine.from_model(args.model, **kw)
  result = bench_infer(engine, task=args.task, batch_sizes=args.batch_sizes, seq_lens=args.seq_lens,
                       warmup=args.warmup, iters=args.iters, max_new_tokens=args.max_new_tokens,
                       profile=args.profile, trace_dir=args.trace_dir)
  lines = [f"bench infer {engine.source} ({result['mode']}, {result['dtype']}, {result['device']['device_kind']}); "
           f"compile {result['compile']['seconds']:.1f}s for {result['compile']['compilations']} programs"]
  for r in result["results"]:
    extra = f", TTFT {r['time_to_first_token_ms']['p50']:.1f} ms" if "time_to_first_token_ms" in r else ""
    lines.append(f"  batch {r['batch_size']:>4} len {r['seq_len']:>5}: p50 {r['latency_ms']['p50']:8.2f} ms  "
                 f"p90 {r['latency_ms']['p90']:8.2f}  p99 {r['latency_ms']['p99']:8.2f}  "
                 f"{r['examples_per_s']:9.1f} ex/s  {r['tokens_per_s']:10.0f} tok/s{extra}")
  return _emit(result, args, "bench_infer", "\n".join(lines))


def run_train(args: argparse.Namespace) -> int:
  import dataclasses

  from xtjax.runs.schema import OptimConfig
  from xtjax.train.bench import bench_train
  from xtjax.models import registry
  from xtjax.parallel.mesh import MeshConfig, make_mesh

  encoder_params, source = None, f"preset:{args.preset}"
  mesh = make_mesh(MeshConfig(devices=args.devices))
  if args.preset:
    family, cfg = registry.preset(args.preset)
  else:
    from xtjax.io_utils import as_path
    from xtjax.models.loading import load_pretrained

    path = as_path(args.model) / "model" if _is_run(args.model) else args.model
    pre = load_pretrained(path, mesh=mesh, with_tokenizer=False, lm_logits=False)
    family, cfg, encoder_params, source = pre.family, pre.config, pre.params, pre.source
  # The classifier reads neither an LM head nor a T5 decoder: neither is built (nor loaded, above).
  cfg = dataclasses.replace(cfg, dtype=args.dtype, **parse_overrides(args.override)).for_heads(lm_logits=False)
  result = bench_train(family, cfg, batch_size=args.batch_size, seq_len=args.seq_len, steps=args.steps,
                       warmup=args.warmup, num_labels=args.num_labels, encoder_params=encoder_params, source=source,
                       dropout=not args.no_dropout, rng_impl=args.rng_impl, mesh=mesh, profile=args.profile,
                       optim_cfg=OptimConfig(grad_accum_steps=args.grad_accum_steps),
                       trace_dir=args.trace_dir)
  mfu = f"{100 * result['mfu']:.1f}%" if result["mfu"] is not None else "n/a"
  summary = (f"bench train {source} ({result['dtype']}, batch {args.batch_size} x len {args.seq_len}, "
             f"{result['device']['device_kind']}): step p50 {result['step_time_ms']['p50']:.1f} ms, "
             f"{result['examples_per_s']:.1f} ex/s, {result['tokens_per_s']:.0f} tok/s, "
             f"{result['model_flops_per_step'] / 1e9:.1f} GFLOP/step, {result['achieved_flops_per_s'] / 1e12:.3f} "
             f"TFLOP/s, MFU {mfu} ({result['peak_source']}); compile {result['compile_seconds']:.1f}s")
  return _emit(result, args, "bench_train", summary)


def run_compare(args: argparse.Namespace) -> int:
  from xtjax.infer.torch_compare import compare, format_report

  dtypes = ["float32", "bfloat16"] if args.dtype == "both" else [DTYPES[args.dtype]]
  results = []
  for dt in dtypes:
    results.append(compare(args.preset, dtype=dt, batch_size=args.batch_size, seq_len=args.seq_len,
                           num_labels=args.num_labels, rounds=args.rounds, train_steps=args.train_steps,
                           infer_iters=args.infer_iters, latency_iters=args.latency_iters,
                           dropout=not args.no_dropout, overrides=parse_overrides(args.override),
                           omp_passive=not args.torch_omp_active))
  result = {"kind": "compare-torch", "results": results}
  if args.out:
    from pathlib import Path

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare_torch.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
  if args.json:
    print(json.dumps(result, indent=2, sort_keys=True))
  else:
    print("\n".join(format_report(r) for r in results))
  return 0


def run_predict(args: argparse.Namespace) -> int:
  from xtjax.data.cache import read_examples
  from xtjax.data.sources import DataSource
  from xtjax.evaluation.buckets import Buckets
  from xtjax.infer.engine import InferenceEngine
  from xtjax.io_utils import write_text_atomic
  from xtjax.tasks import registry as task_registry

  from xtjax.parallel.mesh import MeshConfig

  engine = InferenceEngine.from_run(args.checkpoint, dtype=args.dtype, mesh=MeshConfig(devices=args.devices),
                                    buckets=Buckets(tuple(args.batch_sizes), tuple(args.seq_lens)))
  task = task_registry.get(args.task)
  tcfg = engine.run.task_config(args.task)
  source = DataSource(path=args.data) if args.data else (tcfg.eval_data or tcfg.data)
  examples = read_examples(task, args.split, args.language, source)
  predictions = engine.predict_examples(args.task, examples)
  fmt, text = task.submission_text(predictions, examples)
  write_text_atomic(args.out, text)  # a local path or gs://
  line = (f"predicted {len(examples)} {args.task} examples ({args.split}, {args.language}) -> {args.out} ({fmt}); "
          f"{engine.stats.compilations} programs compiled in {engine.stats.compile_seconds:.1f}s")
  if args.score:
    scores = task.score(predictions, examples, args.language)
    line += "\n" + json.dumps({k: round(float(v), 4) for k, v in scores.items()}, sort_keys=True)
  print(line, file=sys.stdout)
  return 0

