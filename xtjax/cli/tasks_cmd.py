"""`xtjax tasks [--json]`: every task with its languages, head, metric and default data sources."""

from __future__ import annotations

import argparse


def register(sub) -> None:
  p = sub.add_parser("tasks", help="list tasks: languages, head, metric and default hub / TFDS sources")
  p.add_argument("--json", action="store_true", help="print the table as JSON")
  p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  import json

  from xtjax.tasks.catalog import format_rows, task_rows

  rows = task_rows()
  print(json.dumps(rows, indent=1, ensure_ascii=False) if args.json else format_rows(rows))
  return 0
