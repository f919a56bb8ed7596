"""Sweeps: a grid of pipelines (intermediate task x targets x any config axis) run as shared phases.

A sweep file names a base pipeline, the intermediate phases to compare (`none` is the baseline that
starts every target from the pretrained encoder) and axes (dotted pipeline-config keys with lists of
values, crossed). Every phase run is identified by the hash of its fully resolved TrainConfig, so
  - an intermediate phase is trained once and shared by every target that starts from it
    (Phang et al.: 9 intermediate runs for 9 x 9 cells, not 81);
  - a changed config is a new run directory, never a silent skip of the old one;
  - the run directories are the ledger: `summary.json` = done, `sweep_error.json` = failed (kept
    and retried on the next invocation), a live lease (`xtjax.runs.lease`, the trainer's own) = running,
    checkpoints without a summary = interrupted (resumed). Two sweep drivers over one ledger never
    train the same run twice: the second finds the lease held and skips the run.
Backends: `run_sweep` trains the runs in sequence on this machine; `sweep_ray.run_sweep_ray` makes each
a Ray task holding one slice. Both go through `should_start` and `execute_run`, so the ledger is one.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import time
import traceback
from pathlib import Path
from typing import Any

from xtjax import config as config_lib
from xtjax.errors import ConfigError
from xtjax.experiments.pipeline import PipelineConfig, phase_configs
from xtjax.experiments.sweep_progress import SweepProgress
from xtjax.io_utils import run_path, write_text_atomic
from xtjax.runs import identity, lease

log = logging.getLogger(__name__)

NONE = "none"  # the no-intermediate baseline
SWEEP_FILE = "sweep.json"


@dataclasses.dataclass(frozen=True)
class SweepConfig:
  name: str
  pipeline: str  # base pipeline YAML, relative to the sweep file
  intermediate: tuple[str, ...] = ()  # names of intermediate phases to compare ("none": baseline); () = the base's
  intermediates: dict[str, dict[str, Any]] | None = None  # extra intermediate phases: name -> TrainConfig keys
  intermediates_from: tuple[str, ...] = ()  # pipeline YAMLs (relative to the sweep file) lending their intermediate phase
  targets: tuple[str, ...] = ()  # subset of the base pipeline's targets (() = all)
  axes: dict[str, list[Any]] | None = None  # dotted pipeline keys -> values, crossed with everything
  overrides: tuple[str, ...] = ()  # `key=value` over the base pipeline, for every cell (e.g. defaults.cache_dir=...)
  latency: bool = True  # after each target phase: latency / throughput of its best checkpoint (cell_cost.py)
  latency_iters: int = 20
  latency_repeats: int = 5  # timed rounds of latency_iters calls each: the spread of one cell's numbers

  def __post_init__(self):
    for key, values in (self.axes or {}).items():
      if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"axes.{key}: a non-empty list of values")


@dataclasses.dataclass(frozen=True)
class Run:
  """One phase run, shared by every cell that needs it."""
  kind: str  # "intermediate" | "target"
  label: str
  run_dir: Path
  config: Any  # TrainConfig
  after: Path | None  # the intermediate run it starts from


@dataclasses.dataclass(frozen=True)
class Cell:
  intermediate: str
  target: str
  axes: dict[str, Any]
  runs: tuple[Run, ...]  # (intermediate run,) target run

  @property
  def name(self) -> str:
    extra = ",".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in self.axes.items())
    return f"{self.intermediate} -> {self.target}" + (f" [{extra}]" if extra else "")


def load_sweep(path: str | Path, overrides=()) -> tuple[SweepConfig, Path]:
  """(config, base pipeline path); `pipeline` and `intermediates_from` are made relative to the sweep file."""
  path = Path(path)
  # Command-line overrides of the sweep's own keys change the sweep; any other key is a pipeline key.
  fields = {f.name for f in dataclasses.fields(SweepConfig)}
  own = [o for o in overrides if o.split("=", 1)[0].split(".", 1)[0] in fields]
  cfg = config_lib.load(path, SweepConfig, own)
  cfg = dataclasses.replace(cfg, overrides=cfg.overrides + tuple(o for o in overrides if o not in own))
  cfg = dataclasses.replace(cfg, intermediates_from=tuple(str(path.parent / p) for p in cfg.intermediates_from))
  return cfg, (path.parent / cfg.pipeline)


def _slug(text: str) -> str:
  return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)[:40]


def expand(cfg: SweepConfig, pipeline_path: Path, workdir: Path, where: str = "sweep") -> list[Cell]:
  """Every cell, with its runs resolved and identified; all configs are validated before anything trains."""
  base = config_lib.apply_overrides(config_lib.read_with_bases(pipeline_path), cfg.overrides, f"{where}: overrides")
  phases = dict(cfg.intermediates or {})
  for other in cfg.intermediates_from:
    inter = config_lib.read_with_bases(Path(other)).get("intermediate")
    if not inter:
      raise ConfigError(f"{where}: intermediates_from: {other} has no intermediate phase")
    if inter["name"] in phases:
      raise ConfigError(f"{where}: intermediates_from: {other}: phase name {inter['name']!r} is already taken")
    phases[inter["name"]] = inter.get("train", {})
  if base.get("intermediate"):
    phases.setdefault(base["intermediate"]["name"], base["intermediate"].get("train", {}))
  choices = cfg.intermediate or tuple(phases) or (NONE,)
  unknown = [c for c in choices if c != NONE and c not in phases]
  if unknown:
    raise ConfigError(f"{where}: intermediate: unknown phase {unknown[0]!r} (known: {[NONE, *phases]})")
  base_targets = [t["name"] for t in base.get("targets") or []]
  targets = cfg.targets or tuple(base_targets)
  missing = [t for t in targets if t not in base_targets]
  if missing:
    raise ConfigError(f"{where}: targets: {missing[0]!r} is not a target of {pipeline_path} ({base_targets})")
  axes = cfg.axes or {}
  runs_dir = workdir / "runs"
  cells, seen = [], {}
  for values in itertools.product(*axes.values()):
    assignment = dict(zip(axes, values))
    for choice in choices:
      d = json.loads(json.dumps(base))
      d["intermediate"] = {"name": choice, "train": phases[choice]} if choice != NONE else None
      d["targets"] = [t for t in d.get("targets") or [] if t["name"] in targets]
      for key, value in assignment.items():
        if key.startswith("intermediate.") and choice == NONE:
          continue  # an intermediate-phase axis means nothing to the baseline
        config_lib.set_dotted(d, key, json.loads(json.dumps(value)), f"{where}: axes")
      pcfg = config_lib.from_dict(PipelineConfig, d, f"{where} [{choice}, {assignment}]")
      inter_run = None
      for phase_name, tcfg, _ in phase_configs(pcfg, runs_dir, where):
        if inter_run is not None:
          tcfg = dataclasses.replace(tcfg, init_from=str(inter_run.run_dir))
        kind = "intermediate" if pcfg.intermediate is not None and phase_name == pcfg.intermediate.name else "target"
        ident = identity.resolved(tcfg)
        if inter_run is not None:  # the start point by identity, not by where the sweep directory lies
          ident["init_from"] = inter_run.run_dir.name
        # The trainer's own run identity: placement keys (mesh, cache_dir, ...) do not make a new run.
        h = identity.config_hash(ident)
        run = seen.get(h) or Run(kind, phase_name, runs_dir / f"{_slug(phase_name)}-{h}", tcfg,
                                 inter_run.run_dir if inter_run and kind == "target" else None)
        seen[h] = run
        if kind == "intermediate":
          inter_run = run
        else:
          axes_shown = {k: v for k, v in assignment.items() if not (k.startswith("intermediate.") and choice == NONE)}
          cells.append(Cell(choice, phase_name, axes_shown, ((inter_run,) if inter_run else ()) + (run,)))
  # Cells that resolve to the same target run (e.g. the baseline under an intermediate-only axis) are one cell.
  unique = {}
  for c in cells:
    unique.setdefault(c.runs[-1].run_dir, c)
  return list(unique.values())


def unique_runs(cells: list[Cell]) -> list[Run]:
  """Every run once, intermediates before the targets that start from them."""
  out: dict[Path, Run] = {}
  for c in cells:
    for r in c.runs:
      out.setdefault(r.run_dir, r)
  return sorted(out.values(), key=lambda r: r.kind != "intermediate")


# ------------------------------------------------------------------------------------------------
# the ledger (run directories)

def read_json(p: Path) -> dict | None:
  """A JSON file of the ledger, or None when it is absent or half-written."""
  try:
    return json.loads(p.read_text())
  except (FileNotFoundError, json.JSONDecodeError):
    return None


def run_status(run_dir: Path) -> str:
  summary = read_json(run_dir / "summary.json")
  if summary and summary.get("status") == "finished":
    return "done"
  if lease.holder_of(run_dir) is not None:
    return "running"
  if read_json(run_dir / "sweep_error.json"):
    return "failed"
  if (run_dir / "checkpoints").exists():
    return "interrupted"
  return "pending"


def cell_status(cell: Cell) -> str:
  states = [run_status(r.run_dir) for r in cell.runs]
  if all(s == "done" for s in states):
    return "done"
  for s in ("running", "failed", "interrupted"):
    if s in states:
      return s
  return "pending"


def code_revision() -> str:
  """The xtjax checkout's git revision (`+dirty` with uncommitted changes), or the package version outside git."""
  import subprocess

  import xtjax

  src = Path(xtjax.__file__).parent
  try:
    rev = subprocess.run(["git", "-C", str(src), "describe", "--always", "--dirty=+dirty", "--abbrev=12"],
                         capture_output=True, text=True, timeout=10, check=True).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return f"xtjax {xtjax.__version__} (not a git checkout)"
  return f"{rev} (xtjax {xtjax.__version__})"


def write_sweep_file(cfg: SweepConfig, cells: list[Cell], workdir: Path) -> None:
  data = {"name": cfg.name, "sweep": config_lib.to_dict(cfg), "code_revision": code_revision(),
          "cells": [{"name": c.name, "intermediate": c.intermediate, "target": c.target, "axes": c.axes,
                     "runs": [str(r.run_dir.relative_to(workdir)) for r in c.runs]} for c in cells]}
  write_text_atomic(workdir / SWEEP_FILE, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def prepare(cfg: SweepConfig, pipeline_path: Path, workdir: str | Path, where: str) -> tuple[list[Cell], list[Run]]:
  """Expands the sweep into `workdir` (sweep.json written) and lists its runs, dependencies first."""
  workdir = run_path(workdir)
  cells = expand(cfg, pipeline_path, workdir, where)
  write_sweep_file(cfg, cells, workdir)
  runs = unique_runs(cells)
  log.info("sweep %s: %d cells, %d phase runs (%d intermediate)", cfg.name, len(cells), len(runs),
           sum(r.kind == "intermediate" for r in runs))
  return cells, runs


def should_start(run: Run, failed=()) -> bool:
  """Whether a run is to be trained now: not done, not running elsewhere, its intermediate run done."""
  status = run_status(run.run_dir)
  if status == "running":
    log.info("%s: running elsewhere, skipped", run.run_dir.name)
  if status in ("done", "running"):
    return False
  if run.after is not None and (run.after in failed or run_status(run.after) != "done"):
    log.warning("%s: skipped, its intermediate run %s did not finish", run.run_dir.name, run.after.name)
    return False
  return True


def run_sweep(cfg: SweepConfig, pipeline_path: Path, workdir: str | Path, where: str = "sweep",
              train_fn=None) -> dict:
  """Runs every pending / interrupted / failed run once, in sequence on this machine, in dependency order.
  Returns status counts. (`sweep_ray.run_sweep_ray` is the same over a Ray cluster.)"""
  if train_fn is None:
    from xtjax.train.loop import train as train_fn
  workdir = run_path(workdir)
  cells, runs = prepare(cfg, pipeline_path, workdir, where)
  progress = SweepProgress([r for r in runs if run_status(r.run_dir) not in ("done", "running")], cells)
  failed: set[Path] = set()
  for run in runs:
    if not should_start(run, failed):
      continue
    progress.start(run)
    outcome = execute_run(run, train_fn)
    progress.finish()
    if outcome == "failed":
      failed.add(run.run_dir)
    elif outcome == "interrupted":
      log.warning("sweep preempted in %s; run the same command again to resume", run.run_dir)
      break
  if cfg.latency:
    for run in runs:
      if run.kind == "target" and run_status(run.run_dir) == "done":
        measure_run_latency(run.run_dir, cfg.latency_iters, cfg.latency_repeats)
  return status_counts(cells)


def execute_run(run: Run, train_fn, primary: bool = True) -> str:
  """Trains one phase run under its lease: 'done', 'failed' (the error appended to sweep_error.json,
  retried next time), 'interrupted' (preempted; its checkpoints resume it) or 'running' (another
  driver holds the run's lease). `primary`: this process writes the marks (process 0 of a multi-host
  run); every process takes the lease together (`lease.acquire`)."""
  try:
    held = lease.acquire(run.run_dir)
  except lease.LeaseHeld as e:
    log.info("%s: skipped, %s", run.run_dir.name, str(e).split(": ", 1)[-1])
    return "running"
  try:
    summary = train_fn(run.config, run.run_dir)
  except Exception as e:  # noqa: BLE001 - a failed cell is recorded and retried on the next invocation
    if primary:
      record_error(run.run_dir, f"{type(e).__name__}: {e}", traceback.format_exc())
    log.error("%s failed: %s: %s (kept in sweep_error.json; re-run the sweep to retry)", run.run_dir.name,
              type(e).__name__, e)
    return "failed"
  finally:
    held.release()
  return "interrupted" if summary.get("status") == "preempted" else "done"


def record_error(run_dir: Path, error: str, trace: str = "") -> None:
  """Appends an error to the run's sweep_error.json (every attempt's error is kept)."""
  errors = (read_json(run_dir / "sweep_error.json") or {}).get("errors", [])
  errors.append({"time": time.time(), "error": error, "traceback": trace[-4000:]})
  write_text_atomic(run_dir / "sweep_error.json", json.dumps({"errors": errors}, indent=2) + "\n")


def status_counts(cells: list[Cell]) -> dict[str, int]:
  counts: dict[str, int] = {}
  for c in cells:
    s = cell_status(c)
    counts[s] = counts.get(s, 0) + 1
  return counts


def measure_run_latency(run_dir: Path, iters: int, repeats: int = 5) -> None:
  """A finished target run without a latency measurement gets one on this machine's device (a failure is
  logged and retried on the next invocation: the cell's scores stand)."""
  from xtjax.experiments.cell_cost import LATENCY_FILE, measure_latency

  if (run_dir / LATENCY_FILE).exists():
    return
  try:
    out = measure_latency(run_dir, iters=iters, repeats=repeats)
    log.info("%s: batch-1 p50 %.2f ms, %.1f examples/s at batch %d", run_dir.name, out["batch1_p50_ms"],
             out["examples_per_s"], out["eval_batch_size"])
  except Exception as e:  # noqa: BLE001
    log.error("%s: latency not measured (%s: %s); re-run the sweep to retry", run_dir.name, type(e).__name__, e)


def main_score(run_dir: Path) -> tuple[str, float] | None:
  """(metric, zero-shot average) of a finished target run's first task."""
  from xtjax.experiments.report import main_metric

  summary = read_json(run_dir / "summary.json") or {}
  for task, per_lang in (summary.get("zero_shot") or {}).items():
    avg = per_lang.get("avg", {})
    metric = main_metric(task, avg)
    if metric in avg:
      return metric, float(avg[metric])
  return None


def status_table(cells: list[Cell]) -> str:
  lines = [f"{'cell':<60} {'status':<12} score"]
  counts: dict[str, int] = {}
  for c in cells:
    s = cell_status(c)
    counts[s] = counts.get(s, 0) + 1
    score = main_score(c.runs[-1].run_dir) if s == "done" else None
    lines.append(f"{c.name:<60} {s:<12} " + (f"{score[1]:.2f} {score[0]}" if score else "-"))
  lines.append(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
  return "\n".join(lines)
