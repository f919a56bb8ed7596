"""Comparison tables across runs: one row per run, one column per task (zero-shot average of its
main metric), for sweeps such as intermediate epochs 1 vs 10, model scale, or mBERT vs XLM-R."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from xtjax.errors import XtjaxError

# The metric reported for each task in the comparison table (XTREME averages EM and F1 for QA in
# its overall score; the table shows F1, the number papers quote).
MAIN_METRIC = {"xquad": "f1", "mlqa": "f1", "tydiqa": "f1", "squad_v1": "f1", "squad_v2": "f1",
               "udpos": "f1", "panx": "f1", "ccg": "accuracy", "bucc2018": "f1", "lareqa": "map_at_20",
               "mewslix": "map_at_20"}


def _zero_shot(run: Path) -> dict:
  for name in ("results.json", "summary.json"):
    p = run / name
    if p.exists():
      return json.loads(p.read_text()).get("zero_shot", {})
  raise XtjaxError(f"{run}: no results.json (pipeline) or summary.json (train run)")


def collect(runs: list[Path]) -> tuple[list[str], list[dict]]:
  """(task columns, rows) with each row {"run", task: avg main metric, ..., "avg"}."""
  tasks: list[str] = []
  rows = []
  for run in runs:
    zs = _zero_shot(Path(run))
    row = {"run": str(run)}
    for task, per_lang in zs.items():
      avg = per_lang.get("avg", {})
      metric = MAIN_METRIC.get(task, "accuracy" if "accuracy" in avg else next(iter(sorted(avg)), None))
      if metric is None or metric not in avg:
        continue
      row[task] = float(avg[metric])
      if task not in tasks:
        tasks.append(task)
    vals = [row[t] for t in tasks if t in row]
    row["avg"] = sum(vals) / len(vals) if vals else float("nan")
    rows.append(row)
  return tasks, rows


def to_markdown(tasks: list[str], rows: list[dict]) -> str:
  head = "| run | " + " | ".join(tasks) + " | avg |"
  sep = "|---|" + "---:|" * (len(tasks) + 1)
  lines = [head, sep]
  for r in rows:
    cells = [f"{r[t]:.1f}" if t in r else "-" for t in tasks] + [f"{r['avg']:.1f}"]
    lines.append(f"| {r['run']} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def to_csv(tasks: list[str], rows: list[dict]) -> str:
  buf = io.StringIO()
  w = csv.DictWriter(buf, fieldnames=["run"] + tasks + ["avg"], extrasaction="ignore")
  w.writeheader()
  for r in rows:
    w.writerow(r)
  return buf.getvalue()
