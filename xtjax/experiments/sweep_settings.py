"""A sweep's settings (a main-table row x a target: every axis but the seed fixed), aggregated over seeds.

Per setting: the score (mean ± std over seeds), its delta and Welch mark against the no-intermediate baseline
under the same other axes; batch-1 latency p50 / p99 and batch-N throughput of the inference path (every timed
repeat of every seed pooled, so a spread exists even with one seed) with their delta and mark against the
baseline (the same architecture should differ by noise only); measured device-hours without compilation, on
the device named; the analytic estimate for a target TPU from the phases' FLOPs. Markdown, CSV, HTML and
plots all read these records, so they cannot disagree.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import warnings

from xtjax.experiments.sweep import NONE

# Significance against the no-intermediate baseline: Welch's t-test (two-sided, unequal variances) of the
# per-seed scores of a row and of its baseline, when both have at least MIN_SEEDS seeds.
MIN_SEEDS = 3
MARKS = ((0.01, "**"), (0.05, "*"))
SIGNIFICANCE_NOTE = (f"Marks: Welch's t-test (two-sided, unequal variances) over seeds against the no-intermediate "
                     f"baseline, with >= {MIN_SEEDS} seeds on both sides: * p < 0.05, ** p < 0.01.")
# What `plan` assumes of a step (cli/plan_cmd.MFUS spans 40-60%): the estimate's range.
ESTIMATE_MFUS = (0.6, 0.4)


def is_seed(key: str) -> bool:
  return key.rsplit(".", 1)[-1] == "seed"


def axes_label(axes: dict, skip=is_seed) -> tuple[str, ...]:
  """`epochs=1`-style parts of an axes assignment (short key names), in key order."""
  return tuple(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in sorted(axes.items()) if not skip(k))


def row_key(rec: dict) -> tuple:
  return (rec["intermediate"],) + axes_label(rec["axes"])


def baseline_key(rec: dict) -> tuple:
  """What a row is compared with: the baseline under the same axes, intermediate-phase axes aside."""
  return axes_label(rec["axes"], lambda k: is_seed(k) or k.startswith("intermediate."))


def welch_p(a: list[float], b: list[float]) -> float | None:
  """Two-sided p-value of Welch's t-test (scipy), None with fewer than MIN_SEEDS values on a side."""
  if min(len(a), len(b)) < MIN_SEEDS:
    return None
  from scipy import stats

  with warnings.catch_warnings():  # identical constant samples: scipy warns, then returns nan (no test)
    warnings.simplefilter("ignore", RuntimeWarning)
    p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
  return None if math.isnan(p) else p


def mark(p: float | None) -> str:
  return next((m for limit, m in MARKS if p is not None and p < limit), "")


@dataclasses.dataclass(frozen=True)
class Spread:
  """Mean, sample std (None for one value) and count of a sample."""
  mean: float
  std: float | None
  n: int

  @classmethod
  def of(cls, vals) -> Spread | None:
    vals = [float(v) for v in vals]
    if not vals:
      return None
    return cls(statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else None, len(vals))

  def fmt(self, digits: int = 1) -> str:
    return f"{self.mean:.{digits}f}" + (f" ± {self.std:.{digits}f}" if self.std is not None else "")


@dataclasses.dataclass(frozen=True)
class Versus:
  """A setting's difference from its baseline: delta of the means, Welch p (None: too few values) and mark."""
  delta: float
  p: float | None

  @property
  def mark(self) -> str:
    return mark(self.p)


@dataclasses.dataclass(frozen=True)
class Setting:
  label: str  # "intermediate-mnli epochs=1"
  intermediate: str
  target: str
  task: str
  metric: str
  axes: dict  # every axis but the seed
  score: Spread
  score_vs: Versus | None  # None: this is a baseline, or it has none
  p50_ms: Spread | None
  p99_ms: Spread | None
  examples_per_s: Spread | None
  examples_per_s_vs: Versus | None
  batch_size: int | None  # the throughput's batch (the run's eval batch)
  device_hours: Spread | None  # measured, compilation excluded, summed over the cell's phases
  compile_seconds: Spread | None
  device: str | None  # "cpu x1": the device kind and count the phases trained on
  train_flops: float | None  # analytic, summed over the cell's phases (mean over seeds)

  def estimate_hours(self, tpu: str) -> tuple[float, float] | None:
    """Chip-hours the phases' analytic FLOPs take on one `tpu` generation at 60% and 40% MFU (an estimate)."""
    from xtjax.parallel.topology import CHIPS

    if not self.train_flops:
      return None
    return tuple(self.train_flops / (CHIPS[tpu].peak_bf16 * m) / 3600 for m in ESTIMATE_MFUS)


def latency_samples(lat: dict | None, key: str) -> list[float]:
  """Every timed repeat of one cell's latency.json (`repeats`), or its one summary value (older files)."""
  if not lat:
    return []
  return [float(v) for v in (lat.get("repeats") or {}).get(key) or [lat[key]]]


def _cost(rec: dict) -> tuple[float, float, str, float] | None:
  """(device-hours without compile, compile seconds, device, train FLOPs) of a record's phases, None if unknown."""
  costs = rec["phase_costs"]
  if not costs or any(c is None for c in costs):
    return None
  devices = sorted({f"{c['device_kind']} x{c['device_count']}" for c in costs if c.get("device_kind")})
  return (sum(c["device_hours"] for c in costs), sum(c.get("compile_seconds") or 0.0 for c in costs),
          ", ".join(devices) or None, sum(c["train_flops"] for c in costs))


def settings(records: list[dict]) -> list[Setting]:
  """Every setting, baselines first, then by label and target."""
  groups: dict[tuple, list[dict]] = {}
  for r in records:
    groups.setdefault((row_key(r), r["target"]), []).append(r)
  base_of = {(baseline_key(rs[0]), t): rs for (key, t), rs in groups.items() if key[0] == NONE}
  out = []
  for (key, target), recs in sorted(groups.items(), key=lambda kv: (kv[0][0][0] != NONE, kv[0])):
    base = base_of.get((baseline_key(recs[0]), target)) if key[0] != NONE else None
    scores = [r["score"] for r in recs]
    eps = [v for r in recs for v in latency_samples(r["latency"], "examples_per_s")]
    costs = [c for c in map(_cost, recs) if c is not None]
    out.append(Setting(
        label=" ".join(key), intermediate=recs[0]["intermediate"], target=target, task=recs[0]["task"],
        metric=recs[0]["metric"], axes={k: v for k, v in recs[0]["axes"].items() if not is_seed(k)},
        score=Spread.of(scores), score_vs=_versus(scores, [r["score"] for r in base]) if base else None,
        p50_ms=Spread.of(v for r in recs for v in latency_samples(r["latency"], "batch1_p50_ms")),
        p99_ms=Spread.of(v for r in recs for v in latency_samples(r["latency"], "batch1_p99_ms")),
        examples_per_s=Spread.of(eps),
        examples_per_s_vs=_versus(eps, [v for r in base for v in latency_samples(r["latency"], "examples_per_s")])
        if base else None,
        batch_size=next((r["latency"].get("eval_batch_size") for r in recs if r["latency"]), None),
        device_hours=Spread.of(c[0] for c in costs), compile_seconds=Spread.of(c[1] for c in costs),
        device=", ".join(sorted({c[2] for c in costs if c[2]})) or None,
        train_flops=statistics.fmean(c[3] for c in costs) if costs else None))
  return out


def _versus(vals: list[float], base: list[float]) -> Versus | None:
  if not vals or not base:
    return None
  return Versus(statistics.fmean(vals) - statistics.fmean(base), welch_p(vals, base))
