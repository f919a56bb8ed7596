"""`xtjax report RUN [RUN ...]`: one table comparing the zero-shot results of several runs."""

from __future__ import annotations

import argparse


def register(sub) -> None:
  p = sub.add_parser("report", help="compare zero-shot results of pipeline or train runs (markdown / CSV)")
  p.add_argument("runs", nargs="+", help="pipeline directories (results.json) or train runs (summary.json)")
  p.add_argument("--csv", default=None, help="also write the table as CSV to this file")
  p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  from pathlib import Path

  from xtjax.experiments.report import collect, to_csv, to_markdown
  from xtjax.io_utils import write_text_atomic

  tasks, rows = collect([Path(r) for r in args.runs])
  print(to_markdown(tasks, rows))
  if args.csv:
    write_text_atomic(args.csv, to_csv(tasks, rows))
  return 0
