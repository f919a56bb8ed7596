"""`xtjax embed`: one sentence per line in, a float32 .npy of shape [lines, hidden] out."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from xtjax.errors import CheckpointError, DataError

log = logging.getLogger(__name__)


def register(sub) -> None:
  p = sub.add_parser("embed", help="embed sentences (one per line) with a pretrained encoder")
  p.add_argument("--model", required=True, help="xtjax model folder, run directory (its exported encoder), "
                 "Hugging Face folder or hub id")
  p.add_argument("--input", required=True, help="UTF-8 text file, one sentence per line")
  p.add_argument("--out", required=True, help="output .npy file")
  p.add_argument("--layer", type=int, default=-1,
                 help="hidden-state index as in Hugging Face's hidden_states (0: embedding output; -1: last)")
  p.add_argument("--pooling", default="mean", choices=["mean", "cls"])
  p.add_argument("--batch-size", type=int, default=32)
  p.add_argument("--max-length", type=int, default=128)
  p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="compute dtype")
  p.set_defaults(func=run)


def read_lines(path: Path) -> list[str]:
  if not path.exists():
    raise DataError(f"{path}: no such file")
  try:
    text = path.read_text(encoding="utf-8")
  except UnicodeDecodeError as e:
    line = path.read_bytes()[:e.start].count(b"\n") + 1
    raise DataError(f"{path}:{line}: not valid UTF-8") from e
  lines = text.split("\n")
  if lines and lines[-1] == "":
    lines.pop()
  lines = [ln.rstrip("\r") for ln in lines]
  if not lines:
    raise DataError(f"{path}: empty input file (expected one sentence per line)")
  return lines


def model_folder(path: str) -> str | Path:
  """A run directory means the encoder it exported when it finished (`RUN/model`), as `init_from` does."""
  from xtjax.models import store

  run = Path(path)
  if store.is_model_dir(run / "model"):
    return run / "model"
  if (run / "config.yaml").exists() and (run / "best").exists():
    raise CheckpointError(f"{run}: the run has not finished: no exported encoder {run / 'model'} yet")
  return path


def run(args: argparse.Namespace) -> int:
  import numpy as np

  from xtjax.io_utils import atomic_path
  from xtjax.models.embed import embed_sentences
  from xtjax.models.loading import load_pretrained

  if args.batch_size < 1 or args.max_length < 2:
    raise DataError("--batch-size must be >= 1 and --max-length >= 2")
  sentences = read_lines(Path(args.input))
  pre = load_pretrained(model_folder(args.model), dtype=args.dtype)
  vectors, stats = embed_sentences(pre, sentences, args.layer, args.pooling, args.batch_size, args.max_length,
                                   progress=True)
  out = Path(args.out)
  with atomic_path(out, suffix=".npy") as tmp:
    np.save(tmp, vectors)
  if stats.truncated:
    log.warning("%d of %d lines were longer than --max-length %d and were truncated", stats.truncated,
                stats.sentences, args.max_length)
  print(f"embedded {stats.sentences} lines -> {out} {list(vectors.shape)} "
        f"(layer {args.layer}, {args.pooling} pooling, {stats.truncated} truncated, buckets {list(stats.buckets)})")
  return 0
