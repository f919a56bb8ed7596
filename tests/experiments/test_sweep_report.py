"""The sweep report's statistics and figures: significance marks (Welch's t-test over >= 3 seeds),
the Pareto frontier, and every plot as a valid PNG with real content."""

import io
import json
import math

import pytest

from xtjax.experiments import sweep_plots, sweep_report


def _rec(inter, target, score, seed=0, params=None, family="xlm-roberta", eps=None, run_dirs=(), langs=None,
         axes=None):
  axes = dict(axes or {}, **{"defaults.seed": seed})
  return {"intermediate": inter, "target": target, "task": "xnli", "axes": axes, "metric": "accuracy",
          "score": score, "cell": f"{inter} -> {target} [seed={seed}]", "run_dirs": list(run_dirs),
          "phase_costs": [None] * len(run_dirs), "family": family, "params": params,
          "latency": {"examples_per_s": eps, "batch1_p50_ms": 1.0, "batch1_p99_ms": 2.0, "compile_seconds": 1.0,
                      "device_kind": "cpu"} if eps else None,
          "languages": langs or {"de": score - 1, "es": score + 1}}


def test_significance_marks_need_three_seeds_on_both_sides():
  recs = ([_rec("none", "t", v, seed=i) for i, v in enumerate((50.0, 51.0, 52.0))]
          + [_rec("mnli", "t", v, seed=i) for i, v in enumerate((60.0, 61.0, 62.0))]  # far apart: **
          + [_rec("qqp", "t", v, seed=i) for i, v in enumerate((44.0, 51.0, 58.0))])  # same mean: no mark
  _, rows = sweep_report.main_table(recs)
  by = {r["row"]: r for r in rows}
  # Welch: t = 10 / sqrt(1/3 + 1/3) on 4 degrees of freedom; Student's t CDF for 4 degrees in closed form.
  t = 10 / math.sqrt(2 / 3)
  cdf = 0.5 + 3 / 8 * t / math.sqrt(1 + t * t / 4) * (1 - t * t / (12 * (1 + t * t / 4)))
  assert by["mnli"]["t"][4] == pytest.approx(2 * (1 - cdf), rel=1e-6)
  assert by["qqp"]["t"][4] == pytest.approx(1.0)
  md = sweep_report.to_markdown(recs)
  assert "| mnli | 61.0 ± 1.0 (+10.0**) |" in md and "| qqp | 51.0 ± 7.0 (+0.0) |" in md
  assert "Welch's t-test" in md
  two_seeds = [r for r in recs if r["axes"]["defaults.seed"] < 2]
  assert "**" not in sweep_report.to_markdown(two_seeds) and "Welch" not in sweep_report.to_markdown(two_seeds)


def test_pareto_front_keeps_points_no_other_beats_on_both_axes():
  pts = [(100.0, 70.0), (50.0, 80.0), (80.0, 60.0), (10.0, 79.0), (100.0, 65.0), (20.0, 85.0)]
  assert sweep_plots.pareto_front(pts) == [(20.0, 85.0), (50.0, 80.0), (100.0, 70.0)]


def _png_content(png: bytes) -> float:
  """Share of non-white pixels of a PNG (decoded by matplotlib)."""
  import matplotlib.image as mpimg

  assert png[:8] == b"\x89PNG\r\n\x1a\n"
  img = mpimg.imread(io.BytesIO(png), format="png")
  assert img.ndim == 3 and min(img.shape[:2]) > 100
  return float((img[..., :3] < 0.95).any(-1).mean())


def test_every_plot_is_a_png_with_content(tmp_path):
  recs = []
  for i, (inter, fam, params, eps, ep) in enumerate([("none", "bert", 178e6, 900.0, None),
                                                     ("mnli", "bert", 178e6, 880.0, 1),
                                                     ("none", "xlm-roberta", 278e6, 600.0, None),
                                                     ("mnli", "xlm-roberta", 278e6, 610.0, 1),
                                                     ("mnli", "xlm-roberta", 560e6, 200.0, 3)]):
    run = tmp_path / f"run{i}"
    run.mkdir()
    rows = [{"step": s, "kind": "dev/xnli", "time": 0.0, "accuracy": 40.0 + s + i} for s in (10, 20, 30)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    axes = {"intermediate.train.epochs": ep} if ep else {}
    for target, bonus in (("target-xnli", 0.0), ("target-pawsx", 5.0)):
      recs.append(_rec(inter, target, 60.0 + i + bonus, params=params, family=fam, eps=eps, axes=axes,
                       run_dirs=[("target", str(run))]))
  figs = sweep_plots.plots(recs)
  assert sorted(figs) == sorted(sweep_plots.PLOTS)
  for name, png in figs.items():
    assert _png_content(png) > 0.02, name  # axes, lines and labels, not a blank canvas
  assert sweep_plots.dev_curve(tmp_path / "run0") == [(10, 50.0), (20, 60.0), (30, 70.0)]
