"""`xtjax generate`: text generation with an mT5 / T5 or a decoder-only LLM, one jsonl line per prompt."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from xtjax.errors import CheckpointError, ConfigError, DataError

log = logging.getLogger(__name__)


def register(sub) -> None:
  p = sub.add_parser("generate", help="generate text with an mT5 / T5 (greedy or beam search) or a decoder-only LLM (greedy)")
  p.add_argument("--model", required=True, help="xtjax model folder, Hugging Face folder or hub id")
  p.add_argument("--input", required=True, help="text file with one prompt per line (blank lines are skipped)")
  p.add_argument("--out", required=True, help="output jsonl: {line, input, output, tokens} per prompt, input order")
  p.add_argument("--max-new-tokens", type=int, default=64)
  p.add_argument("--batch-size", type=int, default=16)
  p.add_argument("--max-length", type=int, default=512, help="prompts are truncated to this many tokens")
  p.add_argument("--num-beams", type=int, default=1, help="1: greedy decoding")
  p.add_argument("--length-penalty", type=float, default=1.0, help="beam search: score = logprob / length**p")
  p.add_argument("--dtype", default=None, choices=["float32", "bfloat16"], help="compute dtype")
  p.set_defaults(func=run)


def read_prompts(path: str | Path) -> list[tuple[int, str]]:
  """(line number, prompt) for every non-blank line."""
  path = Path(path)
  try:
    text = path.read_text(encoding="utf-8")
  except FileNotFoundError as e:
    raise DataError(f"{path}: no such file") from e
  except UnicodeDecodeError as e:
    raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from e
  prompts = [(i, line.rstrip("\r")) for i, line in enumerate(text.split("\n"), 1) if line.strip()]
  if not prompts:
    raise DataError(f"{path}: no prompts (the file is empty or has only blank lines)")
  return prompts


def _check_args(args: argparse.Namespace) -> None:
  for flag in ("max_new_tokens", "batch_size", "max_length", "num_beams"):
    if getattr(args, flag) < 1:
      raise ConfigError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")


def run(args: argparse.Namespace) -> int:
  from xtjax.io_utils import atomic_path
  from xtjax.models.generate import can_generate, generate_texts
  from xtjax.models.loading import load_pretrained

  _check_args(args)
  prompts = read_prompts(args.input)
  pre = load_pretrained(args.model, dtype=args.dtype)
  model = pre.model()
  if not can_generate(pre.config):
    raise CheckpointError(f"{args.model}: `generate` needs an encoder-decoder (mT5 / T5) or a decoder-only LLM; "
                          f"this is a {pre.family.hf_architecture(pre.config)}")
  if pre.tokenizer is None:
    raise CheckpointError(f"{args.model}: no tokenizer in the model folder")
  results, stats = generate_texts(model, pre.tokenizer, [p for _, p in prompts], max_new_tokens=args.max_new_tokens,
                                  batch_size=args.batch_size, max_length=args.max_length, num_beams=args.num_beams,
                                  length_penalty=args.length_penalty)
  if stats["truncated"]:
    log.warning("%d prompts were truncated to --max-length %d tokens", stats["truncated"], args.max_length)
  with atomic_path(args.out) as tmp:
    with open(tmp, "w", encoding="utf-8") as f:
      for (line, prompt), res in zip(prompts, results):
        f.write(json.dumps({"line": line, "input": prompt, **res}, ensure_ascii=False) + "\n")
  print(f"generated {stats['sequences']} outputs, {stats['new_tokens']} new tokens in {stats['seconds']:.1f}s "
        f"({stats['tokens_per_second']:.1f} tokens/s, input lengths {stats['input_lengths']}) -> {args.out}")
  return 0
