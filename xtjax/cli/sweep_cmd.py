"""`xtjax sweep SWEEP.yaml [k=v ...]` runs (or resumes) a sweep; `xtjax sweep status SWEEP.yaml` shows its cells."""

from __future__ import annotations

import argparse


def register(sub) -> None:
  p = sub.add_parser("sweep", help="run a grid of pipelines with shared intermediate phases (re-running resumes)",
                     usage="xtjax sweep SWEEP.yaml [k=v ...] [--workdir W] [--dry-run] [--backend ray [--address A] "
                           "[--slice v4-32]]\n       xtjax sweep status SWEEP.yaml [--workdir W] [--json]",
                     description="Runs (or resumes) a sweep; `xtjax sweep status` shows its cells.")
  p.add_argument("args", nargs="+", metavar="ARG", help="[status] SWEEP.yaml, then key=value overrides")
  p.add_argument("--workdir", default=None, help="sweep directory (default: runs/sweeps/<name>)")
  p.add_argument("--dry-run", action="store_true", help="list the cells and runs, train nothing")
  p.add_argument("--json", action="store_true", help="status as JSON")
  p.add_argument("--backend", choices=("local", "ray"), default="local",
                 help="local: runs in sequence on this machine; ray: each run a Ray task on a cluster")
  p.add_argument("--address", default=None, help="ray: the cluster (auto, ray://HOST:10001; default: a local Ray)")
  p.add_argument("--slice", default=None, help="ray: reserve one TPU slice of this type per run (e.g. v4-32)")
  p.add_argument("--cell-resources", default=None,
                 help='ray, without --slice: resources of one run\'s task, JSON (default {"CPU": 1}; e.g. {"TPU": 4})')
  p.add_argument("--retries", type=int, default=2, help="ray: re-runs of a task whose worker or node died")
  p.set_defaults(func=run, overrides=[])


def run(args: argparse.Namespace) -> int:
  import json

  from xtjax.experiments import sweep
  from xtjax.io_utils import run_path

  status = args.args[0] == "status"
  rest = args.args[1:] if status else args.args
  if not rest:
    raise SystemExit("xtjax sweep: give the sweep file, e.g. xtjax sweep configs/experiments/tiny.yaml")
  path, overrides = rest[0], list(rest[1:]) + list(args.overrides)
  cfg, pipeline = sweep.load_sweep(path, overrides)
  workdir = run_path(args.workdir or f"runs/sweeps/{cfg.name}")
  cells = sweep.expand(cfg, pipeline, workdir, where=path)
  runs = sweep.unique_runs(cells)
  from xtjax.cli.train_cmds import check_task_names

  for run in runs:  # a typo'd task fails here, before JAX loads
    check_task_names(run.config, f"{path} [{run.label}]")
  if status or args.dry_run:
    if args.json:
      print(json.dumps([{"cell": c.name, "status": sweep.cell_status(c), "runs": [str(r.run_dir) for r in c.runs],
                         "score": sweep.main_score(c.runs[-1].run_dir)} for c in cells], indent=2))
    else:
      print(f"{len(cells)} cells, {len(runs)} phase runs ({sum(r.kind == 'intermediate' for r in runs)} intermediate)"
            f" in {workdir}")
      print(sweep.status_table(cells))
    return 0
  if args.backend == "ray":
    from xtjax.experiments.sweep_ray import parse_resources, run_sweep_ray

    counts = run_sweep_ray(cfg, pipeline, workdir, where=path, address=args.address, slice_type=args.slice,
                           cell_resources=parse_resources(args.cell_resources), retries=args.retries)
  else:
    if args.slice or args.address or args.cell_resources:
      from xtjax.errors import ConfigError

      raise ConfigError("xtjax sweep: --address, --slice and --cell-resources need --backend ray")
    from xtjax.parallel.distributed import maybe_initialize

    maybe_initialize()
    counts = sweep.run_sweep(cfg, pipeline, workdir, where=path)
  print(sweep.status_table(cells))
  print(f"report: xtjax report {workdir}")
  from xtjax.train import preemption

  if preemption.exit_code():  # a signal stopped the run in training; it saved, and a rerun resumes it
    return preemption.exit_code()
  return 1 if counts.get("failed") else 0
