"""The three-phase pipeline: pretrained encoder -> intermediate task(s) -> each target task ->
zero-shot evaluation in every language. Each phase is a sub-run directory; a re-run skips phases
that finished and resumes the one that was interrupted."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from etils import epath

from xtjax import config as config_lib
from xtjax.errors import ConfigError
from xtjax.io_utils import run_path, write_text_atomic
from xtjax.runs import identity, lease
from xtjax.runs.schema import TrainConfig

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PhaseConfig:
  name: str
  train: dict[str, Any] = dataclasses.field(default_factory=dict)  # TrainConfig keys over `defaults`


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  name: str
  defaults: dict[str, Any]  # TrainConfig keys shared by every phase (model, features, mesh, ...)
  targets: tuple[PhaseConfig, ...]
  intermediate: PhaseConfig | None = None  # None: targets start from the pretrained encoder

  def __post_init__(self):
    names = [p.name for p in self.targets] + ([self.intermediate.name] if self.intermediate else [])
    if len(set(names)) != len(names):
      raise ValueError(f"phase names must be unique, got {names}")


def phase_configs(cfg: PipelineConfig, workdir: epath.Path, where: str = "pipeline") -> list[tuple[str, TrainConfig, dict]]:
  """Every phase's validated TrainConfig (all checked before anything trains)."""
  out = []
  inter_dir = None
  phases = ([("intermediate", cfg.intermediate)] if cfg.intermediate else []) + [("target", p) for p in cfg.targets]
  for kind, phase in phases:
    d = config_lib._merge(json.loads(json.dumps(cfg.defaults)), phase.train)  # deep copy, then merge
    d.setdefault("name", f"{cfg.name}/{phase.name}")
    if kind == "target" and inter_dir is not None:
      d.setdefault("init_from", str(inter_dir))
    tcfg = config_lib.from_dict(TrainConfig, d, f"{where} [phase {phase.name}]")
    out.append((phase.name, tcfg, d))
    if kind == "intermediate":
      inter_dir = workdir / phase.name
  return out


def _finished(run: epath.Path) -> dict | None:
  p = run / "summary.json"
  if p.exists():
    s = json.loads(p.read_text())
    if s.get("status") == "finished":
      return s
  return None


def changed_phases(phases, workdir: epath.Path) -> dict[str, list[str]]:
  """{phase: keys that differ} for every phase whose run directory holds a different config."""
  out = {}
  for name, tcfg, _ in phases:
    keys = identity.config_changes(workdir / name, tcfg)
    if keys:
      out[name] = keys
  return out


def run_pipeline(cfg: PipelineConfig, workdir: epath.PathLike, where: str = "pipeline", overwrite: bool = False) -> dict:
  """Runs (or resumes) every phase; returns {"phases": {...}, "zero_shot": {task: {lang: scores}}}.

  A finished phase with the same resolved config is skipped. A phase directory holding a different
  config is an error naming the keys (checked before anything trains), unless `overwrite`: then it
  and every phase after a retrained intermediate phase start afresh.
  """
  from xtjax.train.loop import train

  workdir = run_path(workdir)
  phases = phase_configs(cfg, workdir, where)
  changed = changed_phases(phases, workdir)
  if changed and not overwrite:
    detail = "; ".join(f"{name}: {', '.join(keys[:6])}" for name, keys in changed.items())
    raise ConfigError(f"{workdir}: phases were run with a different config ({detail}); pass --overwrite to "
                      f"run them afresh, or choose another --workdir")
  held = lease.acquire(workdir)  # one pipeline per directory (each phase's trainer leases its own)
  try:
    return _run_phases(cfg, phases, changed, workdir, train)
  finally:
    held.release()


def _run_phases(cfg: PipelineConfig, phases, changed, workdir: epath.Path, train) -> dict:
  results: dict[str, Any] = {"phases": {}, "zero_shot": {}}
  upstream_retrained = False
  for name, tcfg, _ in phases:
    run = workdir / name
    if name in changed or (upstream_retrained and tcfg.init_from):
      identity.discard_run(run)
    done = _finished(run)
    if done is not None:
      log.info("phase %s: finished earlier in %s, skipped", name, run)
    else:
      log.info("phase %s: training in %s", name, run)
      upstream_retrained = upstream_retrained or (cfg.intermediate is not None and name == cfg.intermediate.name)
      done = train(tcfg, run)
      if done["status"] != "finished":
        results["status"] = "preempted"
        results["phases"][name] = done
        return results
    results["phases"][name] = {"step": done["step"], "best": done.get("best")}
    for task, per_lang in done.get("zero_shot", {}).items():
      results["zero_shot"][task] = per_lang
  results["status"] = "finished"
  write_text_atomic(workdir / "results.json", json.dumps(results, indent=2, sort_keys=True) + "\n")
  return results


def resolved_phases(cfg: PipelineConfig, workdir: epath.PathLike, where: str = "pipeline") -> dict[str, dict]:
  """{phase: fully resolved TrainConfig as plain data}: what each phase would run (`--print-config`)."""
  return {name: identity.resolved(tcfg) for name, tcfg, _ in phase_configs(cfg, run_path(workdir), where)}


def load_pipeline(path: str | Path, overrides=()) -> PipelineConfig:
  return config_lib.load(path, PipelineConfig, overrides)


def zero_shot_table(zero_shot: dict) -> str:
  """A plain-text table: one row per task and metric, one column per language, then the average."""
  from xtjax.experiments.report import language_order

  lines = []
  for task, per_lang in zero_shot.items():
    cols = language_order(task, list(per_lang) + ["avg"])
    for metric in sorted(per_lang.get("avg", {})):
      lines.append(f"{task:<10} {metric:<12} " + " ".join(f"{lang:>6}" for lang in cols))
      lines.append(f"{'':<10} {'':<12} " + " ".join(f"{per_lang[lang].get(metric, float('nan')):6.1f}" for lang in cols))
  return "\n".join(lines)
