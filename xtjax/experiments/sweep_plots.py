"""The figures of a sweep report, one function each (PLOTS), from the records of `sweep_report.load_results`
and their settings (`sweep_settings`): every point a setting's mean with its spread over seeds, every line
labelled by its axis values. Score vs intermediate epochs and vs parameters (error bars), score vs throughput
(labelled points, the Pareto frontier over architectures' means), the language x intermediate-task delta
heatmap (one panel per value of the sweep's axes, never averaged over one), and learning curves from
metrics.jsonl (one line per setting, seeds as a band)."""

from __future__ import annotations

import io
import json
import statistics
from pathlib import Path

from xtjax.experiments.report import main_metric
from xtjax.experiments.sweep import NONE
from xtjax.experiments.sweep_settings import (Setting, axes_label, baseline_key, is_seed, latency_samples, row_key,
                                              settings)

SCORE = "zero-shot score (avg over languages)"
LEGEND = {"fontsize": 8, "loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "borderaxespad": 0.0}


def _yerr(st: Setting) -> float:
  return st.score.std or 0.0


def _others(st: Setting, skip) -> str:
  """The setting's axes other than `skip` (and the intermediate-phase axes of a baseline)."""
  return " ".join(axes_label(st.axes, lambda k: is_seed(k) or k == skip))


def score_vs_epochs(records, plt):
  """Mean score per intermediate epochs with std over seeds; the baseline as a dashed line and band."""
  keys = sorted({k for r in records for k in r["axes"] if k.endswith("epochs")})
  if not keys:
    return None
  key = keys[0]
  fig, ax = plt.subplots(figsize=(6.5, 4))
  sts = settings(records)
  lines: dict[tuple, list[Setting]] = {}
  for st in sts:
    if st.intermediate != NONE and key in st.axes:
      lines.setdefault((st.target, st.intermediate, _others(st, key)), []).append(st)
  for (target, inter, other), pts in sorted(lines.items()):
    pts.sort(key=lambda st: float(st.axes[key]))
    label = f"{inter} -> {target}" + (f" {other}" if other else "")
    bar = ax.errorbar([float(st.axes[key]) for st in pts], [st.score.mean for st in pts],
                      yerr=[_yerr(st) for st in pts], marker="o", capsize=4, label=label)
    color = bar.lines[0].get_color()
    for st in sts:  # the no-intermediate baseline of the same target (and other axes)
      if st.intermediate == NONE and st.target == target and _others(st, key) == other:
        ax.axhline(st.score.mean, color=color, linestyle="--", linewidth=1)
        if st.score.std:
          ax.axhspan(st.score.mean - st.score.std, st.score.mean + st.score.std, color=color, alpha=0.12)
  n = max((st.score.n for st in sts), default=1)
  ax.set(xlabel=key, ylabel=SCORE, title=f"mean ± std over seeds (up to {n}); dashed and band: no intermediate task")
  ax.set_xticks(sorted({float(st.axes[key]) for st in sts if key in st.axes}))
  ax.title.set_fontsize(8)
  ax.legend(**LEGEND)
  return fig


def score_vs_params(records, plt):
  sized = [r for r in records if r.get("params")]
  if len({r["params"] for r in sized}) < 2:  # one model size: nothing to plot against
    return None
  params_of = {(" ".join(row_key(r)), r["target"]): r["params"] for r in sized}
  lines: dict[tuple, list[tuple[float, Setting]]] = {}
  for st in settings(sized):
    p = params_of[(st.label, st.target)]
    lines.setdefault((st.intermediate, st.target, _others(st, None)), []).append((p, st))
  fig, ax = plt.subplots(figsize=(6.5, 4))
  for (inter, target, _), pts in sorted(lines.items()):
    pts.sort(key=lambda x: x[0])
    ax.errorbar([p for p, _ in pts], [st.score.mean for _, st in pts], yerr=[_yerr(st) for _, st in pts],
                marker="o", capsize=4, linestyle="--" if inter == NONE else "-", label=f"{inter} -> {target}")
    for p, st in pts:
      ax.annotate(_others(st, None) or st.label, (p, st.score.mean), fontsize=6, xytext=(3, 3),
                  textcoords="offset points")
  ax.set_xscale("log")
  ax.set(xlabel="parameters (encoder, log scale)", ylabel=SCORE, title="mean ± std over seeds")
  ax.title.set_fontsize(8)
  ax.legend(**LEGEND)
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
  """A point per setting (mean score ± std, x: its architecture's throughput over all its cells ± std), labelled;
  the frontier over the architectures' best means: one architecture's throughput differs by noise only."""
  timed = [r for r in records if r.get("latency")]
  if not timed:
    return None
  arch_of = {(" ".join(row_key(r)), r["target"]): (r["family"] or "?", r["params"]) for r in timed}
  thr: dict[tuple, list[float]] = {}
  for r in timed:  # throughput per architecture and target task: every timed cell of that model
    thr.setdefault(arch_of[(" ".join(row_key(r)), r["target"])] + (r["target"],), []).extend(
        latency_samples(r["latency"], "examples_per_s"))
  fig, ax = plt.subplots(figsize=(7, 4.5))
  markers = dict(zip(sorted({r["target"] for r in timed}), "os^vD<>p*h"))
  best: dict[str, dict[tuple, tuple[float, float]]] = {}
  archs = sorted(set(arch_of.values()), key=str)
  for st in settings(timed):
    arch = arch_of[(st.label, st.target)]
    xs = thr[arch + (st.target,)]
    x, xerr = statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)
    ax.errorbar([x], [st.score.mean], xerr=[xerr], yerr=[_yerr(st)], marker=markers[st.target], capsize=3,
                linestyle="none", color=f"C{archs.index(arch) % 10}")
    ax.annotate(st.label, (x, st.score.mean), fontsize=6, xytext=(4, 3), textcoords="offset points")
    cur = best.setdefault(st.target, {}).get(arch)
    if cur is None or st.score.mean > cur[1]:
      best[st.target][arch] = (x, st.score.mean)
  for target, per_arch in best.items():
    if len(per_arch) > 1:
      front = pareto_front(list(per_arch.values()))
      ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="k", linewidth=1, alpha=0.6,
              label=f"Pareto frontier ({target})")
  for i, arch in enumerate(archs):
    ax.plot([], [], color=f"C{i % 10}", marker="o", linestyle="none",
            label=f"{arch[0]}" + (f" {arch[1] / 1e6:.3g}M" if arch[1] else ""))
  for target, m in markers.items():
    ax.plot([], [], color="0.4", marker=m, linestyle="none", label=target)
  one = len(archs) == 1
  ax.set(xlabel="inference examples/s at the eval batch (one device): mean ± std over every timed repeat of its cells", ylabel=SCORE,
         title="one architecture: its throughputs differ by noise only, no frontier" if one
         else "points: mean ± std over seeds; line: Pareto frontier over architectures' best means")
  ax.title.set_fontsize(8)
  ax.legend(**LEGEND)
  ax.margins(x=0.15)
  return fig


def _panels(records) -> list[tuple[str, ...]]:
  """The heatmap's facets: each assignment of the sweep's axes but the seed, as the intermediate rows have it."""
  return sorted({axes_label(r["axes"]) for r in records if r["intermediate"] != NONE})


def delta_heatmap(records, plt):
  """Per panel (one assignment of the sweep's axes, e.g. epochs=1): intermediate task x target/language, the
  mean delta over seeds against the baseline under the same other axes."""
  import numpy as np

  inters = sorted({r["intermediate"] for r in records if r["intermediate"] != NONE})
  base: dict[tuple, list[float]] = {}
  for r in records:
    if r["intermediate"] == NONE:
      for lang, v in r["languages"].items():
        base.setdefault((baseline_key(r), r["target"], lang), []).append(v)
  cols = sorted({k[1:] for k in base})
  panels = _panels(records)
  if not inters or not cols or not panels:
    return None
  grids = []
  for panel in panels:
    grid = np.full((len(inters), len(cols)), np.nan)
    for i, inter in enumerate(inters):
      for j, (t, lang) in enumerate(cols):
        recs = [r for r in records if r["intermediate"] == inter and r["target"] == t and lang in r["languages"]
                and axes_label(r["axes"]) == panel]
        ref = base.get((baseline_key(recs[0]), t, lang)) if recs else None
        if recs and ref:
          grid[i, j] = statistics.fmean(r["languages"][lang] for r in recs) - statistics.fmean(ref)
    grids.append(grid)
  finite = [g[np.isfinite(g)] for g in grids]
  lim = max((float(np.abs(f).max()) for f in finite if f.size), default=1.0) or 1.0
  fig, axes = plt.subplots(1, len(panels), figsize=(0.6 + (1 + 0.5 * len(cols)) * len(panels), 1.5 + 0.5 * len(inters)),
                           squeeze=False, sharey=True)
  for ax, panel, grid in zip(axes[0], panels, grids):
    im = ax.imshow(grid, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(cols)), [f"{t}/{lang}" for t, lang in cols], rotation=90, fontsize=7)
    ax.set_yticks(range(len(inters)), inters)
    ax.set_title(" ".join(panel) or "all cells", fontsize=9)
    for (i, j), v in np.ndenumerate(grid):
      if np.isfinite(v):
        ax.text(j, i, f"{v:+.1f}", ha="center", va="center", fontsize=7)
  fig.colorbar(im, ax=list(axes[0]), label="delta vs no intermediate (mean over seeds)")
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


def curve_groups(records) -> dict[str, dict[str, dict[str, list[tuple[int, float]]]]]:
  """{panel: {setting label: {run dir: curve}}}: intermediate runs labelled by their phase and its axes, target
  runs by their setting (`intermediate-mnli epochs=1`); seeds of a setting are one label."""
  panels: dict[str, dict[str, dict[str, list]]] = {}
  for r in sorted(records, key=lambda r: r["cell"]):
    for kind, run_dir in r["run_dirs"]:
      if kind == "intermediate":
        panel = "intermediate runs"
        label = " ".join((r["intermediate"],) + axes_label(r["axes"], lambda k: is_seed(k)
                                                           or not k.startswith("intermediate.")))
      else:
        panel, label = r["target"], " ".join(row_key(r))
      curve = dev_curve(run_dir)
      if curve:
        panels.setdefault(panel, {}).setdefault(label, {})[run_dir] = curve
  return panels


def learning_curves(records, plt):
  """Dev score per step: one panel for the intermediate runs, one per target; a line per setting (mean over its
  seeds, std as a band), styles cycled so overlapping lines stay visible."""
  import numpy as np

  panels = curve_groups(records)
  if not panels:
    return None
  fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
  styles = ("-", "--", "-.", ":")
  for ax, (panel, groups) in zip(axes[0], sorted(panels.items())):
    for k, (label, runs) in enumerate(sorted(groups.items())):
      steps = sorted(set.intersection(*[{s for s, _ in c} for c in runs.values()]))
      vals = np.array([[dict(c)[s] for s in steps] for c in runs.values()])
      mean = vals.mean(0)
      n = len(runs)
      ax.plot(steps, mean, marker=".", linestyle=styles[k % len(styles)], linewidth=1.5,
              label=label + (f" ({n} seeds)" if n > 1 else ""))
      if n > 1:
        sd = vals.std(0, ddof=1)
        ax.fill_between(steps, mean - sd, mean + sd, alpha=0.15, color=ax.lines[-1].get_color())
    ax.set(title=panel, xlabel="step", ylabel="dev score (main metric)")
    ax.legend(fontsize=8, loc="best")
  return fig


PLOTS = {"score_vs_epochs.png": score_vs_epochs, "score_vs_params.png": score_vs_params,
         "score_vs_throughput.png": score_vs_throughput, "delta_heatmap.png": delta_heatmap,
         "learning_curves.png": learning_curves}
CAPTIONS = {
    "score_vs_epochs.png": "Zero-shot score against intermediate-task epochs: mean ± std over seeds per setting; "
                           "dashed line and band: the no-intermediate baseline.",
    "score_vs_params.png": "Zero-shot score against encoder parameters (mean ± std over seeds).",
    "score_vs_throughput.png": "Zero-shot score against inference throughput, a labelled point per setting "
                               "(mean ± std); the frontier is drawn over architectures only.",
    "delta_heatmap.png": "Per-language delta against the no-intermediate baseline, one panel per value of the "
                         "sweep's axes (mean over seeds).",
    "learning_curves.png": "Dev score during training: one line per setting (mean over seeds, std band).",
}


def figures(records: list[dict]) -> dict:
  """{file name: matplotlib Figure} of every figure the records allow (e.g. no epochs axis: no epochs plot)."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  out = {}
  for name, make in PLOTS.items():
    fig = make(records, plt)
    if fig is not None:
      out[name] = fig
  return out


def plots(records: list[dict]) -> dict[str, bytes]:
  """{file name: PNG bytes} of `figures`."""
  figs = figures(records)
  import matplotlib.pyplot as plt

  out = {}
  for name, fig in figs.items():
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    out[name] = buf.getvalue()
  return out
