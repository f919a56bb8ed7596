"""The report of a sweep directory: the paper's main table (rows: intermediate task, columns: each
target and the average; the score and its delta against the no-intermediate baseline; mean +- std
over seeds), per-language tables, plots, as markdown, CSV and one self-contained HTML page."""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import json
import math
import statistics

from etils import epath

from xtjax.errors import XtjaxError
from xtjax.experiments.cell_cost import LATENCY_FILE
from xtjax.experiments.published import beside
from xtjax.experiments.report import _table, language_order, main_metric
from xtjax.experiments.sweep import NONE, SWEEP_FILE, read_json
from xtjax.experiments.sweep_settings import (MIN_SEEDS, SIGNIFICANCE_NOTE, Setting, Spread, mark, row_key,
                                              settings)


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


def main_table(records: list[dict]) -> tuple[list[str], list[dict]]:
  """(target columns, rows); a row: {"row": label, target: (mean, std, delta, n, p)}, plus "avg" (p: Welch's
  t-test against the baseline, or None). Built from `settings`, so it agrees with every other table."""
  targets = sorted({r["target"] for r in records})
  by_row: dict[str, dict[str, Setting]] = {}
  for st in settings(records):
    by_row.setdefault(st.label, {})[st.target] = st
  rows = []
  for label, per_t in by_row.items():
    row: dict = {"row": label}
    for t, st in per_t.items():
      vs = st.score_vs
      row[t] = (st.score.mean, st.score.std, vs.delta if vs else None, st.score.n, vs.p if vs else None)
    means = [row[t][0] for t in targets if t in row]
    deltas = [row[t][2] for t in targets if t in row]
    avg = statistics.fmean(means) if means else math.nan
    is_base = next(iter(per_t.values())).intermediate == NONE
    row["avg"] = (avg, None, statistics.fmean(deltas) if not is_base and deltas and None not in deltas else None,
                  1, None)
    rows.append(row)
  return targets, rows


def _fmt(cell) -> str:
  if cell is None:
    return "-"
  m, s, d, _, p = cell
  text = f"{m:.1f}" + (f" ± {s:.1f}" if s is not None else "")
  return text + (f" ({d:+.1f}{mark(p)})" if d is not None else "")


@dataclasses.dataclass(frozen=True)
class Table:
  """One table of the report, rendered as markdown (`to_markdown`) and HTML (`sweep_html`) alike."""
  title: str | None
  head: list[str]
  rows: list[list[str]]
  note: str | None = None
  key: str = ""  # an anchor / test handle: main, settings, cells, lang:<target>, published


def tables(records: list[dict], tpu: str = "v4") -> list[Table]:
  """Every table of the report in order: the main table, settings, cells, then each target per language."""
  targets, rows = main_table(records)
  cols = targets + ["avg"]
  seeded = any(r.get(t) and r[t][3] >= MIN_SEEDS for r in rows for t in targets)
  out = [Table(None, ["intermediate"] + cols, [[r["row"]] + [_fmt(r.get(c)) for c in cols] for r in rows],
               SIGNIFICANCE_NOTE if seeded else None, "main"),
         settings_table(records, tpu),
         Table("Accuracy, latency and cost per cell", *cost_table(records), key="cells")]
  for t in targets:
    recs = [r for r in records if r["target"] == t]
    langs = language_order(recs[0]["task"], {lang for r in recs for lang in r["languages"]})  # the benchmark's order
    per_row: dict[str, dict[str, list[float]]] = {}
    for r in recs:
      for lang, v in r["languages"].items():
        per_row.setdefault(" ".join(row_key(r)), {}).setdefault(lang, []).append(v)
    lines = [[label] + [f"{statistics.fmean(per_row[label][lang]):.1f}" if lang in per_row[label] else "-"
                        for lang in langs]
             for label in sorted(per_row, key=lambda k: (not k.startswith(NONE), k))]
    out.append(Table(f"{t} ({recs[0]['metric']}) per language", ["intermediate"] + langs, lines,
                     "mean over seeds", key=f"lang:{t}"))
  ref = beside(settings(records))
  if ref:
    out.append(Table("Published results beside this sweep", *ref,
                     "Published: test sets, averaged over the task's languages, for the model named; the difference "
                     "compares a different model and setup unless they match.", key="published"))
  return out


def _spread(s: Spread | None, digits: int = 2) -> str:
  return "-" if s is None else s.fmt(digits) + (f" (n={s.n})" if s.n > 1 else "")


def settings_table(records: list[dict], tpu: str) -> Table:
  """Per setting: score, latency and throughput (mean ± std), each with its delta and mark against the
  baseline, and the cost: measured device-hours without compilation (device named) beside the estimate."""
  head = ["setting", "target", "seeds", "score", "Δ score", "sig.", "batch-1 p50 ms", "batch-1 p99 ms",
          "examples/s (batch)", "Δ examples/s", "sig. (examples/s)", "device-h measured (no compile)", "compile s",
          f"device-h estimate ({tpu}, 60-40% MFU)"]
  lines, sts = [], settings(records)
  for st in sts:
    est = st.estimate_hours(tpu)
    eps = _spread(st.examples_per_s, 1)
    lines.append([st.label, st.target, str(st.score.n), st.score.fmt(1),
                  f"{st.score_vs.delta:+.1f}" if st.score_vs else "-", st.score_vs.mark if st.score_vs else "",
                  _spread(st.p50_ms), _spread(st.p99_ms), eps + (f" (b{st.batch_size})" if st.batch_size else ""),
                  f"{st.examples_per_s_vs.delta:+.1f}" if st.examples_per_s_vs else "-",
                  st.examples_per_s_vs.mark if st.examples_per_s_vs else "",
                  (_spread(st.device_hours, 4) + f" on {st.device}") if st.device_hours else "-",
                  _spread(st.compile_seconds, 1), f"{est[0]:.3g}-{est[1]:.3g} (estimate)" if est else "-"])
  timed = ("Latency and throughput: the inference path after warm-up, every timed repeat of every seed pooled "
           "(n values); Δ and sig. against the no-intermediate baseline of the same target and axes (Welch's "
           f"t-test, >= {MIN_SEEDS} values a side; no mark: no significant difference, e.g. the same architecture). "
           if any(st.examples_per_s for st in sts) else "")
  note = (timed + "Score: Δ and sig. as in the main table. Device-hours: the cell's phases (a shared intermediate run counts in each of its cells), measured "
          "training time x devices without each step's first compile (compile s, apart); the estimate is the "
          f"phases' analytic FLOPs at 60% and 40% MFU of one {tpu} chip, as `xtjax plan` assumes.")
  return Table("Latency, throughput and cost per setting (mean ± std over seeds)", head, lines, note, "settings")


def cost_table(records: list[dict]) -> tuple[list[str], list[list[str]]]:
  """Per cell (one seed), next to its score: parameters, training FLOPs and measured device-hours of each phase
  (intermediate, target; compilation excluded), and latency / throughput of its best checkpoint."""
  head = ["cell", "score", "params", "inter. PFLOPs", "inter. device-h", "target PFLOPs", "target device-h",
          "batch-1 p50 ms", "p99 ms", "examples/s (eval batch)", "infer compile s", "device"]
  lines = []
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
    lines.append([r["cell"], f"{r['score']:.1f}", params] + phases + timing)
  return head, lines


def table_markdown(t: Table) -> list[str]:
  out = ([f"### {t.title}", ""] if t.title else []) + _table(t.head, t.rows)
  return out + (["", t.note] if t.note else [])


def tables_markdown(ts: list[Table]) -> str:
  out: list[str] = []
  for t in ts:
    out += ([""] if out else []) + table_markdown(t)
  return "\n".join(out)


def to_markdown(records: list[dict], tpu: str = "v4") -> str:
  return tables_markdown(tables(records, tpu))


def setting_columns(st: Setting, tpu: str) -> dict[str, str]:
  """A setting's aggregates as CSV columns (empty: not measured)."""
  def num(v, fmt=".6g"):
    return "" if v is None else format(v, fmt)

  def spread(prefix, s):
    return {f"{prefix}_mean": num(s and s.mean), f"{prefix}_std": num(s and s.std), f"{prefix}_n": num(s and s.n, "d")}

  est = st.estimate_hours(tpu)
  return {"setting": st.label, "intermediate": st.intermediate, "target": st.target, "metric": st.metric,
          "axes": json.dumps(st.axes, sort_keys=True), **spread("score", st.score),
          "score_delta": num(st.score_vs and st.score_vs.delta), "score_p": num(st.score_vs and st.score_vs.p),
          "score_mark": st.score_vs.mark if st.score_vs else "",
          **spread("batch1_p50_ms", st.p50_ms), **spread("batch1_p99_ms", st.p99_ms),
          **spread("examples_per_s", st.examples_per_s), "throughput_batch": num(st.batch_size, "d"),
          "examples_per_s_delta": num(st.examples_per_s_vs and st.examples_per_s_vs.delta),
          "examples_per_s_p": num(st.examples_per_s_vs and st.examples_per_s_vs.p),
          "examples_per_s_mark": st.examples_per_s_vs.mark if st.examples_per_s_vs else "",
          **spread("device_hours_measured", st.device_hours), **spread("compile_seconds", st.compile_seconds),
          "device": st.device or "", "estimate_tpu": tpu,
          "estimate_device_hours_60mfu": num(est and est[0]), "estimate_device_hours_40mfu": num(est and est[1])}


def _csv(header: list[str], rows: list[dict]) -> str:
  buf = io.StringIO()
  w = csv.DictWriter(buf, fieldnames=header)
  w.writeheader()
  w.writerows(rows)
  return buf.getvalue()


def settings_csv(records: list[dict], tpu: str = "v4") -> str:
  """One row per setting: its aggregates over seeds (the markdown's settings table, unformatted)."""
  rows = [setting_columns(st, tpu) for st in settings(records)]
  return _csv(list(rows[0]) if rows else [], rows)


def to_csv(records: list[dict], tpu: str = "v4") -> str:
  """One row per cell (one seed) and target task: its own score, cost, latency and languages, then its setting's
  aggregates over seeds (score, latency p50 / p99, throughput: mean, std, n; delta and mark vs the baseline)."""
  by_setting = {(st.label, st.target): setting_columns(st, tpu) for st in settings(records)}
  langs = sorted({k for r in records for k in r["languages"]})
  rows = []
  for r in records:
    costs = [c for c in r["phase_costs"] if c]
    lat = r["latency"] or {}
    own = {"cell": r["cell"], "cell_axes": json.dumps(r["axes"], sort_keys=True), "task": r["task"],
           "score": f"{r['score']:.4f}", "params": r["params"] or "",
           "train_pflops": f"{sum(c['train_flops'] for c in costs) / 1e15:.6g}" if costs else "",
           "device_hours": f"{sum(c['device_hours'] for c in costs):.6g}" if costs else "",
           "cell_batch1_p50_ms": lat.get("batch1_p50_ms", ""), "cell_batch1_p99_ms": lat.get("batch1_p99_ms", ""),
           "cell_examples_per_s": lat.get("examples_per_s", "")}
    agg = by_setting[(" ".join(row_key(r)), r["target"])]
    rows.append({**own, **agg, **{"lang:" + x: f"{r['languages'][x]:.4f}" if x in r["languages"] else ""
                                  for x in langs}})
  return _csv(list(rows[0]) if rows else [], rows)


def header(sweep_dir: epath.Path, records: list[dict]) -> dict[str, str]:
  """The report's header: the sweep's name, the code revision (at sweep and report time), devices and dates."""
  from xtjax.experiments.sweep import code_revision

  meta = json.loads((sweep_dir / SWEEP_FILE).read_text())
  trained = sorted({c["device_kind"] + f" x{c['device_count']}" for r in records for c in r["phase_costs"]
                    if c and c.get("device_kind")})
  timed = sorted({r["latency"]["device_kind"] for r in records if r["latency"]})
  now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
  return {"sweep": meta.get("name") or sweep_dir.name, "directory": str(sweep_dir),
          "revision": meta.get("code_revision") or "not recorded (sweep written before revisions were kept)",
          "report_revision": code_revision(), "trained_on": ", ".join(trained) or "not recorded",
          "timed_on": ", ".join(timed) or "not measured", "date": now,
          "cells": f"{len({r['cell'] for r in records})} of {len(meta['cells'])} cells finished"}
