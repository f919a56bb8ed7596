"""`xtjax convert`, `xtjax export` and `xtjax presets`."""

from __future__ import annotations

import argparse
import json


def register(sub) -> None:
  p = sub.add_parser("convert", help="Hugging Face folder or hub id -> xtjax model folder")
  p.add_argument("--model", required=True, help="Hugging Face folder or hub id")
  p.add_argument("--out", required=True, help="output xtjax model folder")
  p.add_argument("--param-dtype", default=None, choices=["float32", "bfloat16"])
  p.set_defaults(func=run_convert)

  p = sub.add_parser("export", help="xtjax model folder -> Hugging Face folder (loadable by transformers)")
  p.add_argument("--model", required=True, help="xtjax model folder (or anything `convert` accepts)")
  p.add_argument("--out", required=True, help="output Hugging Face folder")
  p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  p.set_defaults(func=run_export)

  p = sub.add_parser("presets", help="list model presets with their parameter counts (counted abstractly, from a table)")
  p.add_argument("--json", action="store_true")
  p.set_defaults(func=run_presets)


def run_convert(args: argparse.Namespace) -> int:
  from xtjax.models import store
  from xtjax.models.loading import load_pretrained

  pre = load_pretrained(args.model, param_dtype=args.param_dtype)
  out = store.save(args.out, pre.family, pre.config, pre.params, pre.tokenizer)
  from xtjax.models.init import count_params

  print(f"converted {args.model} ({pre.family.name}, {count_params(pre.params):,} parameters, "
        f"{len(pre.ignored)} checkpoint tensors ignored) -> {out}")
  return 0


def run_export(args: argparse.Namespace) -> int:
  from xtjax.models.loading import export_hf, load_pretrained

  pre = load_pretrained(args.model)
  out = export_hf(pre, args.out, dtype=args.dtype)
  left = ("; saved without its LM head / decoder (no head of its run read the LM logits): take them from the "
          "pretrained checkpoint") if pre.config.lm_part_left_out else ""
  print(f"exported {args.model} -> {out} ({pre.family.hf_architecture(pre.config)}{left})")
  return 0


def run_presets(args: argparse.Namespace) -> int:
  from xtjax.cli.preset_table import PRESETS

  rows = [{"preset": name, "family": family, "parameters": n} for name, family, n in PRESETS]
  if args.json:
    print(json.dumps(rows, indent=2))
  else:
    for r in rows:
      print(f"{r['preset']:<20} {r['family']:<8} {r['parameters']:>16,}")
  return 0
