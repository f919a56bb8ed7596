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
  out = []
  for cell in meta["cells"]:
    summary_path = sweep_dir / cell["runs"][-1] / "summary.json"
    if not summary_path.exists():
      continue
    summary = json.loads(summary_path.read_text())
    for task, per_lang in (summary.get("zero_shot") or {}).items():
      avg = per_lang.get("avg", {})
      metric = main_metric(task, avg)
      if metric not in avg:
        continue
      out.append({"intermediate": cell["intermediate"], "target": cell["target"], "task": task,
                  "axes": cell["axes"], "metric": metric, "score": float(avg[metric]), "cell": cell["name"],
                  "latency": read_json(sweep_dir / cell["runs"][-1] / LATENCY_FILE),
                  "train_seconds": sum(float((read_json(sweep_dir / r / "summary.json") or {}).get("train_seconds") or 0)
                                       for r in cell["runs"]),
                  "languages": {lang: float(v[metric]) for lang, v in per_lang.items() if lang != "avg" and metric in v}})
  return out


def _row_key(rec: dict) -> tuple:
  return (rec["intermediate"],) + tuple(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in sorted(rec["axes"].items())
                                        if not _is_seed(k))


def _baseline_key(rec: dict) -> tuple:
  """What a row is compared with: the baseline under the same axes, intermediate-phase axes aside."""
  return tuple(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in sorted(rec["axes"].items())
               if not _is_seed(k) and not k.startswith("intermediate."))


def _mean_std(vals: list[float]) -> tuple[float, float | None]:
  return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None)


def main_table(records: list[dict]) -> tuple[list[str], list[dict]]:
  """(target columns, rows); a row: {"row": label, target: (mean, std, delta, n)}, plus "avg"."""
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
        row[t] = (m, s, (m - base[t]) if t in base and key[0] != NONE else None, len(per_t[t]))
    means = [row[t][0] for t in targets if t in row]
    bases = [base[t] for t in targets if t in row and t in base]
    avg = statistics.fmean(means) if means else math.nan
    row["avg"] = (avg, None, (avg - statistics.fmean(bases)) if key[0] != NONE and len(bases) == len(means) and bases
                  else None, 1)
    rows.append(row)
  return targets, rows


def _fmt(cell) -> str:
  if cell is None:
    return "-"
  m, s, d, _ = cell
  text = f"{m:.1f}" + (f" ± {s:.1f}" if s is not None else "")
  return text + (f" ({d:+.1f})" if d is not None else "")


def to_markdown(records: list[dict]) -> str:
  targets, rows = main_table(records)
  cols = targets + ["avg"]
  lines = ["| intermediate | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
  for r in rows:
    lines.append(f"| {r['row']} | " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
  lines += ["", "### Latency and training cost per cell", "", cost_table(records)]
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
  """Per cell: latency and throughput of its best checkpoint, and training time (intermediate + target)."""
  lines = ["| cell | batch-1 p50 ms | p99 ms | examples/s (eval batch) | compile s | train s | device |",
           "|---|---:|---:|---:|---:|---:|---|"]
  for r in sorted(records, key=lambda r: r["cell"]):
    lat = r.get("latency")
    cells = ([f"{lat['batch1_p50_ms']:.2f}", f"{lat['batch1_p99_ms']:.2f}", f"{lat['examples_per_s']:.1f}",
              f"{lat['compile_seconds']:.1f}"] if lat else ["-"] * 4)
    lines.append(f"| {r['cell']} | " + " | ".join(cells) + f" | {r['train_seconds']:.0f} | "
                 f"{lat['device_kind'] if lat else '-'} |")
  return "\n".join(lines)


def to_csv(records: list[dict]) -> str:
  buf = io.StringIO()
  w = csv.writer(buf)
  w.writerow(["intermediate", "target", "axes", "metric", "score"] + ["lang:" + x for x in
                                                                      sorted({k for r in records for k in r["languages"]})])
  langs = sorted({k for r in records for k in r["languages"]})
  for r in records:
    w.writerow([r["intermediate"], r["target"], json.dumps(r["axes"], sort_keys=True), r["metric"], f"{r['score']:.4f}"]
               + [f"{r['languages'][x]:.4f}" if x in r["languages"] else "" for x in langs])
  return buf.getvalue()


def plots(records: list[dict]) -> dict[str, bytes]:
  """PNG figures: score vs intermediate epochs (when an axis sets them), language x intermediate delta heatmap."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  figs: dict[str, bytes] = {}
  epoch_keys = sorted({k for r in records for k in r["axes"] if k.endswith("epochs")})
  if epoch_keys:
    key = epoch_keys[0]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for t in sorted({r["target"] for r in records}):
      pts: dict[float, list[float]] = {}
      for r in records:
        if r["target"] == t and key in r["axes"] and r["intermediate"] != NONE:
          pts.setdefault(float(r["axes"][key]), []).append(r["score"])
      if pts:
        xs = sorted(pts)
        line, = ax.plot(xs, [statistics.fmean(pts[x]) for x in xs], marker="o", label=t)
        base = [r["score"] for r in records if r["target"] == t and r["intermediate"] == NONE]
        if base:  # the no-intermediate baseline of the same target
          ax.axhline(statistics.fmean(base), color=line.get_color(), linestyle="--", linewidth=1)
    ax.set_xlabel(key)
    ax.set_ylabel("zero-shot score (avg over languages)")
    ax.set_title("dashed: no intermediate task", fontsize=8)
    ax.legend()
    figs["score_vs_epochs.png"] = _png(fig)
  timed = [r for r in records if r.get("latency")]
  if timed:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for t in sorted({r["target"] for r in timed}):
      pts = [(r["latency"]["examples_per_s"], r["score"]) for r in timed if r["target"] == t]
      ax.scatter([p[0] for p in pts], [p[1] for p in pts], label=t)
    ax.set_xlabel("inference examples/s at the eval batch (one device)")
    ax.set_ylabel("zero-shot score (avg over languages)")
    ax.legend()
    figs["score_vs_throughput.png"] = _png(fig)
  inters = sorted({r["intermediate"] for r in records if r["intermediate"] != NONE})
  base = {}
  for r in records:
    if r["intermediate"] == NONE:
      for lang, v in r["languages"].items():
        base.setdefault((r["target"], lang), []).append(v)
  cols = sorted(base)
  if inters and cols:
    import numpy as np

    grid = np.full((len(inters), len(cols)), np.nan)
    for i, inter in enumerate(inters):
      for j, (t, lang) in enumerate(cols):
        vals = [r["languages"][lang] for r in records if r["intermediate"] == inter and r["target"] == t
                and lang in r["languages"]]
        if vals:
          grid[i, j] = statistics.fmean(vals) - statistics.fmean(base[(t, lang)])
    fig, ax = plt.subplots(figsize=(1 + 0.5 * len(cols), 1 + 0.5 * len(inters)))
    lim = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0
    im = ax.imshow(grid, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(cols)), [f"{t}/{lang}" for t, lang in cols], rotation=90, fontsize=7)
    ax.set_yticks(range(len(inters)), inters)
    for (i, j), v in np.ndenumerate(grid):
      if np.isfinite(v):
        ax.text(j, i, f"{v:+.1f}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, label="delta vs no intermediate")
    figs["delta_heatmap.png"] = _png(fig)
  return figs


def _png(fig) -> bytes:
  import matplotlib.pyplot as plt

  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
  plt.close(fig)
  return buf.getvalue()


def to_html(title: str, markdown: str, figs: dict[str, bytes]) -> str:
  imgs = "".join(f'<h3>{html.escape(n)}</h3><img alt="{html.escape(n)}" src="data:image/png;base64,'
                 f'{base64.b64encode(b).decode()}">' for n, b in figs.items())
  return (f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
          f"<h1>{html.escape(title)}</h1><pre>{html.escape(markdown)}</pre>{imgs}\n")
