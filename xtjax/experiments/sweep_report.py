"""The report of a sweep directory: the paper's main table (rows: intermediate task, columns: each
target and the average; the score and its delta against the no-intermediate baseline; mean +- std
over seeds), per-language tables, plots, as markdown, CSV and one self-contained HTML page."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import statistics

from etils import epath

from xtjax.errors import XtjaxError
from xtjax.experiments.cell_cost import LATENCY_FILE
from xtjax.experiments.report import language_order, main_metric
from xtjax.experiments.sweep import NONE, SWEEP_FILE, read_json


def _is_seed(key: str) -> bool:
  return key.rsplit(".", 1)[-1] == "seed"


def load_results(sweep_dir: epath.Path) -> list[dict]:
  """One record per finished target run: intermediate, target, axes, main metric, avg, per-language."""
  meta_path = sweep_dir / SWEEP_FILE
  if not meta_path.exists():
    raise XtjaxError(f"{meta_path}: missing; is {sweep_dir} a sweep directory written by `xtjax sweep`?")
  meta = json.loads(meta_path.read_text())
  out, cost_of = [], {}  # an intermediate run is shared by many cells: its cost computed once
  for cell in meta["cells"]:
    summary_path = sweep_dir / cell["runs"][-1] / "summary.json"
    if not summary_path.exists():
      continue
    summary = json.loads(summary_path.read_text())
    run_dirs = [(kind, sweep_dir / r) for kind, r in zip(("intermediate", "target")[2 - len(cell["runs"]):],
                                                        cell["runs"])]
    costs = [_cost(d, cost_of) for _, d in run_dirs]
    for task, per_lang in (summary.get("zero_shot") or {}).items():
      avg = per_lang.get("avg", {})
      metric = main_metric(task, avg)
      if metric not in avg:
        continue
      out.append({"intermediate": cell["intermediate"], "target": cell["target"], "task": task,
                  "axes": cell["axes"], "metric": metric, "score": float(avg[metric]), "cell": cell["name"],
                  "latency": read_json(sweep_dir / cell["runs"][-1] / LATENCY_FILE),
                  "run_dirs": [(k, str(d)) for k, d in run_dirs], "phase_costs": costs,
                  "family": costs[-1]["family"] if costs[-1] else None,
                  "params": costs[-1]["params"] if costs[-1] else None,
                  "languages": {lang: float(v[metric]) for lang, v in per_lang.items() if lang != "avg" and metric in v}})
  return out


def _cost(run_dir: epath.Path, cache: dict) -> dict | None:
  """A finished run's parameters, training FLOPs and device-hours (None while it is not finished)."""
  from xtjax.experiments.phase_cost import phase_cost

  summary = read_json(run_dir / "summary.json")
  if not summary or summary.get("status") != "finished" or not (run_dir / "model").is_dir():
    return None  # not finished, or not written by the trainer (no exported model to count)
  if run_dir not in cache:
    cache[run_dir] = phase_cost(run_dir, summary)
  return cache[run_dir]


def _row_key(rec: dict) -> tuple:
  return (rec["intermediate"],) + tuple(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in sorted(rec["axes"].items())
                                        if not _is_seed(k))


def _baseline_key(rec: dict) -> tuple:
  """What a row is compared with: the baseline under the same axes, intermediate-phase axes aside."""
  return tuple(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in sorted(rec["axes"].items())
               if not _is_seed(k) and not k.startswith("intermediate."))


def _mean_std(vals: list[float]) -> tuple[float, float | None]:
  return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None)


# Significance against the no-intermediate baseline: Welch's t-test (two-sided, unequal variances) of the
# per-seed scores of a row and of its baseline, when both have at least MIN_SEEDS seeds.
MIN_SEEDS = 3
MARKS = ((0.01, "**"), (0.05, "*"))
SIGNIFICANCE_NOTE = (f"Marks: Welch's t-test (two-sided, unequal variances) over seeds against the no-intermediate "
                     f"baseline, with >= {MIN_SEEDS} seeds on both sides: * p < 0.05, ** p < 0.01.")


def welch_p(a: list[float], b: list[float]) -> float | None:
  """Two-sided p-value of Welch's t-test (scipy), None with fewer than MIN_SEEDS values on a side."""
  if min(len(a), len(b)) < MIN_SEEDS:
    return None
  from scipy import stats

  p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
  return None if math.isnan(p) else p  # identical constant samples: no test


def main_table(records: list[dict]) -> tuple[list[str], list[dict]]:
  """(target columns, rows); a row: {"row": label, target: (mean, std, delta, n, p)}, plus "avg" (p: Welch's
  t-test against the baseline, or None)."""
  targets = sorted({r["target"] for r in records})
  groups: dict[tuple, dict[str, list[float]]] = {}
  base_of: dict[tuple, tuple] = {}
  base_vals: dict[tuple, dict[str, list[float]]] = {}
  for r in records:
    groups.setdefault(_row_key(r), {}).setdefault(r["target"], []).append(r["score"])
    base_of[_row_key(r)] = _baseline_key(r)
    if r["intermediate"] == NONE:
      base_vals.setdefault(_baseline_key(r), {}).setdefault(r["target"], []).append(r["score"])
  baseline = {k: {t: statistics.fmean(v) for t, v in per_t.items()} for k, per_t in base_vals.items()}
  rows = []
  for key in sorted(groups, key=lambda k: (k[0] != NONE, k)):
    per_t = groups[key]
    row: dict = {"row": " ".join(key)}
    base = baseline.get(base_of[key], {})
    for t in targets:
      if t in per_t:
        m, s = _mean_std(per_t[t])
        vs_base = t in base and key[0] != NONE
        p = welch_p(per_t[t], base_vals[base_of[key]][t]) if vs_base else None
        row[t] = (m, s, (m - base[t]) if vs_base else None, len(per_t[t]), p)
    means = [row[t][0] for t in targets if t in row]
    bases = [base[t] for t in targets if t in row and t in base]
    avg = statistics.fmean(means) if means else math.nan
    row["avg"] = (avg, None, (avg - statistics.fmean(bases)) if key[0] != NONE and len(bases) == len(means) and bases
                  else None, 1, None)
    rows.append(row)
  return targets, rows


def _fmt(cell) -> str:
  if cell is None:
    return "-"
  m, s, d, _, p = cell
  text = f"{m:.1f}" + (f" ± {s:.1f}" if s is not None else "")
  mark = next((m for limit, m in MARKS if p is not None and p < limit), "")
  return text + (f" ({d:+.1f}{mark})" if d is not None else "")


def to_markdown(records: list[dict]) -> str:
  targets, rows = main_table(records)
  cols = targets + ["avg"]
  lines = ["| intermediate | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
  for r in rows:
    lines.append(f"| {r['row']} | " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
  if any(r.get(t) and r[t][3] >= MIN_SEEDS for r in rows for t in targets):
    lines += ["", SIGNIFICANCE_NOTE]
  lines += ["", "### Accuracy, latency and cost per cell", "", cost_table(records)]
  for t in targets:
    recs = [r for r in records if r["target"] == t]
    langs = language_order(recs[0]["task"], {lang for r in recs for lang in r["languages"]})  # the benchmark's order
    lines += ["", f"### {t} ({recs[0]['metric']}) per language", "",
              "| intermediate | " + " | ".join(langs) + " |", "|---|" + "---:|" * len(langs)]
    per_row: dict[str, dict[str, list[float]]] = {}
    for r in recs:
      for lang, v in r["languages"].items():
        per_row.setdefault(" ".join(_row_key(r)), {}).setdefault(lang, []).append(v)
    for label in sorted(per_row, key=lambda k: (not k.startswith(NONE), k)):
      lines.append(f"| {label} | " + " | ".join(f"{statistics.fmean(per_row[label][lang]):.1f}"
                                               if lang in per_row[label] else "-" for lang in langs) + " |")
  return "\n".join(lines)


def cost_table(records: list[dict]) -> str:
  """Per cell, next to its score: parameters, training FLOPs and device-hours of each phase (intermediate,
  target), and latency / throughput of its best checkpoint on the inference path."""
  lines = ["| cell | score | params | inter. PFLOPs | inter. device-h | target PFLOPs | target device-h "
           "| batch-1 p50 ms | p99 ms | examples/s (eval batch) | compile s | device |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
  for r in sorted(records, key=lambda r: r["cell"]):
    costs = dict(zip([k for k, _ in r["run_dirs"]], r["phase_costs"]))
    phases = []
    for kind in ("intermediate", "target"):
      c = costs.get(kind)
      phases += [f"{c['train_flops'] / 1e15:.3g}", f"{c['device_hours']:.3g}"] if c else ["-", "-"]
    lat = r.get("latency")
    timing = ([f"{lat['batch1_p50_ms']:.2f}", f"{lat['batch1_p99_ms']:.2f}", f"{lat['examples_per_s']:.1f}",
               f"{lat['compile_seconds']:.1f}", lat["device_kind"]] if lat else ["-"] * 5)
    params = f"{r['params'] / 1e6:.3g}M" if r.get("params") else "-"
    lines.append(f"| {r['cell']} | {r['score']:.1f} | {params} | " + " | ".join(phases + timing) + " |")
  return "\n".join(lines)


def to_csv(records: list[dict]) -> str:
  """One row per cell and target task: score, its phases' cost summed (a shared intermediate run counts in each of
  its cells), throughput, then each language."""
  buf = io.StringIO()
  w = csv.writer(buf)
  langs = sorted({k for r in records for k in r["languages"]})
  w.writerow(["intermediate", "target", "axes", "metric", "score", "params", "train_pflops", "device_hours",
              "examples_per_s"] + ["lang:" + x for x in langs])
  for r in records:
    costs = [c for c in r["phase_costs"] if c]
    total = (f"{sum(c['train_flops'] for c in costs) / 1e15:.6g}", f"{sum(c['device_hours'] for c in costs):.6g}"
             ) if costs else ("", "")
    w.writerow([r["intermediate"], r["target"], json.dumps(r["axes"], sort_keys=True), r["metric"], f"{r['score']:.4f}",
                r["params"] or "", *total, f"{r['latency']['examples_per_s']:.2f}" if r["latency"] else ""]
               + [f"{r['languages'][x]:.4f}" if x in r["languages"] else "" for x in langs])
  return buf.getvalue()


def to_html(title: str, markdown: str, figs: dict[str, bytes]) -> str:
  imgs = "".join(f'<h3>{html.escape(n)}</h3><img alt="{html.escape(n)}" src="data:image/png;base64,'
                 f'{base64.b64encode(b).decode()}">' for n, b in figs.items())
  return (f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
          f"<h1>{html.escape(title)}</h1><pre>{html.escape(markdown)}</pre>{imgs}\n")
