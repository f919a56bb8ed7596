"""Comparison tables across runs: one row per run, one column per task (zero-shot average of its
main metric), for sweeps such as intermediate epochs 1 vs 10, model scale, or mBERT vs XLM-R; then
each task's main metric per language, and each phase's best dev scores (an intermediate phase has
no zero-shot languages, only dev scores)."""

from __future__ import annotations

import csv
import io
import json
from etils import epath

from xtjax.errors import XtjaxError
from xtjax.io_utils import as_path

# The metric reported for each task in the comparison table (XTREME averages EM and F1 for QA in
# its overall score; the table shows F1, the number papers quote).
MAIN_METRIC = {"xquad": "f1", "mlqa": "f1", "tydiqa": "f1", "squad_v1": "f1", "squad_v2": "f1",
               "udpos": "f1", "panx": "f1", "ccg": "accuracy", "bucc2018": "f1", "lareqa": "map_at_20",
               "mewslix": "map_at_20"}


def _read(run: epath.Path) -> dict:
  for name in ("results.json", "summary.json"):
    p = run / name
    if p.exists():
      return json.loads(p.read_text())
  raise XtjaxError(f"{run}: no results.json (pipeline) or summary.json (train run)")


def language_order(task: str, languages) -> list[str]:
  """A task's languages in its benchmark's order (XTREME's, then XTREME-R's additions), others sorted
  after them, "avg" last: the same order however the results were stored."""
  from xtjax.tasks.xtreme import benchmark_tasks

  known: list[str] = []
  for benchmark in ("xtreme", "xtreme-r"):
    spec = benchmark_tasks(benchmark).get(task)
    known += [lang for lang in (spec.languages if spec else ()) if lang not in known]
  langs = [lang for lang in languages if lang != "avg"]
  ordered = [lang for lang in known if lang in langs] + sorted(lang for lang in langs if lang not in known)
  return ordered + (["avg"] if "avg" in languages else [])


def main_metric(task: str, avg: dict) -> str | None:
  """The metric a task is compared by (MAIN_METRIC, else accuracy, else the first one reported)."""
  return MAIN_METRIC.get(task, "accuracy" if "accuracy" in avg else next(iter(sorted(avg)), None))


def _phases(doc: dict) -> dict[str, dict]:
  """{phase: {"step", "best"}}: a pipeline's phases, or a train run as its one phase."""
  if "phases" in doc:
    return doc["phases"]
  return {"-": {"step": doc.get("step"), "best": doc.get("best")}} if "best" in doc else {}


def collect(runs: list[epath.PathLike]) -> tuple[list[str], list[dict]]:
  """(task columns, rows) with each row {"run", task: avg main metric, ..., "avg" (None without
  zero-shot scores), "languages": {task: (main metric, {lang: value})}, "phases": {phase: {"step", "best"}}}."""
  tasks: list[str] = []
  rows = []
  for run in runs:
    doc = _read(as_path(run))
    row = {"run": str(run), "languages": {}, "phases": _phases(doc)}
    for task, per_lang in doc.get("zero_shot", {}).items():
      metric = main_metric(task, per_lang.get("avg", {}))
      if metric is None or metric not in per_lang.get("avg", {}):
        continue
      row[task] = float(per_lang["avg"][metric])
      row["languages"][task] = (metric, {lang: float(scores[metric]) for lang, scores in per_lang.items()
                                         if metric in scores})
      if task not in tasks:
        tasks.append(task)
    vals = [row[t] for t in tasks if t in row]
    row["avg"] = sum(vals) / len(vals) if vals else None
    rows.append(row)
  return tasks, rows


def _cell(value) -> str:
  return "-" if value is None else f"{value:.1f}"


def _table(head: list[str], lines: list[list[str]]) -> list[str]:
  return ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)] + \
      ["| " + " | ".join(cells) + " |" for cells in lines]


def to_markdown(tasks: list[str], rows: list[dict]) -> str:
  """The task table; then, per task, its main metric per language; then each phase's best dev scores."""
  out = _table(["run"] + tasks + ["avg"], [[r["run"]] + [_cell(r.get(t)) for t in tasks] + [_cell(r["avg"])]
                                           for r in rows])
  for task in tasks:
    per_run = [(r["run"], r["languages"][task][1]) for r in rows if task in r["languages"]]
    metric = next(r["languages"][task][0] for r in rows if task in r["languages"])
    langs = language_order(task, {lang for _, scores in per_run for lang in scores})
    out += ["", f"{task} ({metric}) per language:", ""]
    out += _table(["run"] + langs, [[run] + [_cell(scores.get(lang)) for lang in langs] for run, scores in per_run])
  phases = [(r["run"], name, p) for r in rows for name, p in r["phases"].items()]
  if phases:
    out += ["", "best dev scores per phase:", ""]
    out += _table(["run", "phase", "step", "dev"], [[run, name, str(p.get("step")), _dev(p.get("best"))]
                                                    for run, name, p in phases])
  return "\n".join(out)


def _dev(best: dict | None) -> str:
  dev = (best or {}).get("dev") or {}
  return "; ".join(f"{task} " + ", ".join(f"{m} {v:.1f}" for m, v in sorted(scores.items()))
                   for task, scores in dev.items()) or "-"


def to_csv(tasks: list[str], rows: list[dict]) -> str:
  buf = io.StringIO()
  w = csv.DictWriter(buf, fieldnames=["run"] + tasks + ["avg"], extrasaction="ignore")
  w.writeheader()
  for r in rows:
    w.writerow(r)
  return buf.getvalue()
