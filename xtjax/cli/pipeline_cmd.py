"""`xtjax pipeline CONFIG [key=value ...]`: pretrained -> intermediate -> targets -> zero-shot table."""

from __future__ import annotations

import argparse
import sys


def register(sub) -> None:
  p = sub.add_parser("pipeline", help="run the three-phase pipeline (re-running skips finished phases)")
  p.add_argument("config", help="pipeline YAML, e.g. configs/phang2020/xlmr_large_mnli.yaml or "
                 "configs/tiny/pipeline.yaml")
  p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. defaults.seed=1")
  p.add_argument("--workdir", default=None, help="default: runs/<name>")
  p.add_argument("--overwrite", action="store_true",
                 help="phases run with a different config start afresh (default: an error naming the keys)")
  p.add_argument("--print-config", action="store_true",
                 help="print every phase's fully resolved config as YAML and exit")
  p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  from xtjax.cli.train_cmds import check_task_names
  from xtjax.experiments.pipeline import load_pipeline, phase_configs, resolved_phases, run_pipeline, zero_shot_table
  from xtjax.io_utils import as_path

  cfg = load_pipeline(args.config, args.overrides)
  workdir = as_path(args.workdir or f"runs/{cfg.name}")
  # Every phase validated, its tasks too: a bad config fails here, before JAX loads.
  for name, tcfg, _ in phase_configs(cfg, workdir, args.config):
    check_task_names(tcfg, f"{args.config} [phase {name}]")
  phases = resolved_phases(cfg, workdir, args.config)
  if args.print_config:
    import yaml

    print(yaml.safe_dump(phases, sort_keys=False, allow_unicode=True), end="")
    return 0
  from xtjax.parallel.distributed import maybe_initialize

  maybe_initialize()
  res = run_pipeline(cfg, workdir, where=args.config, overwrite=args.overwrite)
  if res["status"] == "preempted":
    from xtjax.train import preemption

    phase = next(reversed(res["phases"]))  # the phase that was training
    print(f"phase {phase}: " + preemption.interrupted_line(res["phases"][phase]["step"]), file=sys.stderr)
    return preemption.exit_code()  # 130 (SIGINT), 143 (SIGTERM)
  print("\nzero-shot results (" + str(workdir / "results.json") + ")")
  print(zero_shot_table(res["zero_shot"]))
  return 0
