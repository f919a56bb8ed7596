"""The figures of a sweep report, one function each (PLOTS), from the records of `sweep_report.load_results`:
score vs intermediate epochs, score vs parameters, score vs throughput with the Pareto frontier per
model family, the language x intermediate-task delta heatmap, and learning curves from metrics.jsonl."""

from __future__ import annotations

import io
import json
import statistics
from pathlib import Path

from xtjax.experiments.report import main_metric
from xtjax.experiments.sweep import NONE

SCORE = "zero-shot score (avg over languages)"


def _mean_by(records: list[dict], x_of) -> dict[str, dict[float, float]]:
  """{target: {x: mean score}} over the records that have an x (seeds averaged)."""
  pts: dict[str, dict[float, list[float]]] = {}
  for r in records:
    x = x_of(r)
    if x is not None:
      pts.setdefault(r["target"], {}).setdefault(float(x), []).append(r["score"])
  return {t: {x: statistics.fmean(v) for x, v in p.items()} for t, p in pts.items()}


def score_vs_epochs(records, plt):
  keys = sorted({k for r in records for k in r["axes"] if k.endswith("epochs")})
  if not keys:
    return None
  key = keys[0]
  fig, ax = plt.subplots(figsize=(5, 3.5))
  for t, pts in sorted(_mean_by([r for r in records if r["intermediate"] != NONE], lambda r: r["axes"].get(key)).items()):
    xs = sorted(pts)
    line, = ax.plot(xs, [pts[x] for x in xs], marker="o", label=t)
    base = [r["score"] for r in records if r["target"] == t and r["intermediate"] == NONE]
    if base:  # the no-intermediate baseline of the same target
      ax.axhline(statistics.fmean(base), color=line.get_color(), linestyle="--", linewidth=1)
  ax.set(xlabel=key, ylabel=SCORE, title="dashed: no intermediate task")
  ax.title.set_fontsize(8)
  ax.legend()
  return fig


def score_vs_params(records, plt):
  sized = [r for r in records if r.get("params")]
  if len({r["params"] for r in sized}) < 2:  # one model size: nothing to plot against
    return None
  fig, ax = plt.subplots(figsize=(5, 3.5))
  for inter in sorted({r["intermediate"] for r in sized}):
    for t, pts in sorted(_mean_by([r for r in sized if r["intermediate"] == inter], lambda r: r["params"]).items()):
      xs = sorted(pts)
      ax.plot(xs, [pts[x] for x in xs], marker="o", linestyle="--" if inter == NONE else "-", label=f"{inter} -> {t}")
  ax.set_xscale("log")
  ax.set(xlabel="parameters (encoder, log scale)", ylabel=SCORE)
  ax.legend(fontsize=7)
  return fig


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
  """The points no other point beats in both throughput (x) and score (y), by increasing x."""
  front, best = [], float("-inf")
  for x, y in sorted(points, key=lambda p: (-p[0], -p[1])):
    if y > best:
      front.append((x, y))
      best = y
  return front[::-1]


def score_vs_throughput(records, plt):
  timed = [r for r in records if r.get("latency")]
  if not timed:
    return None
  fig, ax = plt.subplots(figsize=(5, 3.5))
  markers = dict(zip(sorted({r["target"] for r in timed}), "os^vD<>p*h"))
  for fam in sorted({r["family"] or "?" for r in timed}):
    mine = [r for r in timed if (r["family"] or "?") == fam]
    color = None
    for t, m in markers.items():
      pts = [(r["latency"]["examples_per_s"], r["score"]) for r in mine if r["target"] == t]
      if pts:
        sc = ax.scatter([p[0] for p in pts], [p[1] for p in pts], marker=m, color=color, label=f"{fam}: {t}")
        color = sc.get_facecolor()[0]
        front = pareto_front(pts)
        ax.step([p[0] for p in front], [p[1] for p in front], where="post", color=color, linewidth=1)
  ax.set(xlabel="inference examples/s at the eval batch (one device)", ylabel=SCORE,
         title="lines: Pareto frontier per model family and target")
  ax.title.set_fontsize(8)
  ax.legend(fontsize=7)
  return fig


def delta_heatmap(records, plt):
  import numpy as np

  inters = sorted({r["intermediate"] for r in records if r["intermediate"] != NONE})
  base: dict[tuple, list[float]] = {}
  for r in records:
    if r["intermediate"] == NONE:
      for lang, v in r["languages"].items():
        base.setdefault((r["target"], lang), []).append(v)
  cols = sorted(base)
  if not inters or not cols:
    return None
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
  return fig


def dev_curve(run_dir: Path) -> list[tuple[int, float]]:
  """(step, dev main metric) of a run from its metrics.jsonl (the first task's, averaged over tasks)."""
  path = Path(run_dir) / "metrics.jsonl"
  if not path.exists():
    return []
  by_step: dict[int, list[float]] = {}
  for line in path.read_text().splitlines():
    row = json.loads(line)
    if row.get("kind", "").startswith("dev/"):
      scores = {k: v for k, v in row.items() if k not in ("step", "kind", "time")}
      metric = main_metric(row["kind"][4:], scores)
      if metric in scores:
        by_step.setdefault(int(row["step"]), []).append(float(scores[metric]))
  return [(s, statistics.fmean(v)) for s, v in sorted(by_step.items())]


def learning_curves(records, plt):
  """Dev score per step: one panel for the intermediate runs, one per target (a line per run)."""
  panels: dict[str, dict[str, list]] = {}
  for r in sorted(records, key=lambda r: r["cell"]):
    for kind, run_dir in r["run_dirs"]:
      panel = "intermediate runs" if kind == "intermediate" else r["target"]
      label = Path(run_dir).name if kind == "intermediate" else r["cell"].split(" -> ")[0] + _axes_label(r)
      curve = dev_curve(run_dir)
      if curve:
        panels.setdefault(panel, {})[label] = curve
  if not panels:
    return None
  fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.5), squeeze=False)
  for ax, (panel, lines) in zip(axes[0], sorted(panels.items())):
    for label, curve in sorted(lines.items()):
      ax.plot([s for s, _ in curve], [v for _, v in curve], marker=".", label=label)
    ax.set(title=panel, xlabel="step", ylabel="dev score (main metric)")
    ax.legend(fontsize=6)
  return fig


def _axes_label(r: dict) -> str:
  extra = ",".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in sorted(r["axes"].items()))
  return f" [{extra}]" if extra else ""


PLOTS = {"score_vs_epochs.png": score_vs_epochs, "score_vs_params.png": score_vs_params,
         "score_vs_throughput.png": score_vs_throughput, "delta_heatmap.png": delta_heatmap,
         "learning_curves.png": learning_curves}


def plots(records: list[dict]) -> dict[str, bytes]:
  """{file name: PNG bytes} of every figure the records allow (e.g. no epochs axis: no epochs plot)."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  out = {}
  for name, make in PLOTS.items():
    fig = make(records, plt)
    if fig is not None:
      buf = io.BytesIO()
      fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
      plt.close(fig)
      out[name] = buf.getvalue()
  return out
