"""`xtjax sweep SWEEP.yaml [k=v ...]` runs (or resumes) a sweep; `xtjax sweep status SWEEP.yaml` shows its cells."""

from __future__ import annotations

import argparse


def register(sub) -> None:
  p = sub.add_parser("sweep", help="run a grid of pipelines with shared intermediate phases (re-running resumes)",
                     description="xtjax sweep SWEEP.yaml [k=v ...] | xtjax sweep status SWEEP.yaml [--json]")
  p.add_argument("args", nargs="+", metavar="[status] SWEEP.yaml [k=v ...]")
  p.add_argument("--workdir", default=None, help="sweep directory (default: runs/sweeps/<name>)")
  p.add_argument("--dry-run", action="store_true", help="list the cells and runs, train nothing")
  p.add_argument("--json", action="store_true", help="status as JSON")
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
  if status or args.dry_run:
    if args.json:
      print(json.dumps([{"cell": c.name, "status": sweep.cell_status(c), "runs": [str(r.run_dir) for r in c.runs],
                         "score": sweep.main_score(c.runs[-1].run_dir)} for c in cells], indent=2))
    else:
      print(f"{len(cells)} cells, {len(runs)} phase runs ({sum(r.kind == 'intermediate' for r in runs)} intermediate)"
            f" in {workdir}")
      print(sweep.status_table(cells))
    return 0
  from xtjax.parallel.distributed import maybe_initialize

  maybe_initialize()
  counts = sweep.run_sweep(cfg, pipeline, workdir, where=path)
  print(sweep.status_table(cells))
  print(f"report: xtjax report {workdir}")
  return 1 if counts.get("failed") else 0
