"""The Ray backend of `xtjax sweep`: every phase run is a Ray task that requests one slice's resources.

Why Ray and not XPK / GKE JobSet: a sweep is a DAG of ~100 short jobs (each target run starts after
its shared intermediate run) over a pool of slices that come and go (spot, queued resources). Ray
gives that directly: a task's argument is its intermediate run's result, so the dependency is
Ray's; tasks queue until a slice is free; `ray.util.tpu.run_on_slice` reserves a whole multi-host
slice and starts one JAX process per host; Ray runs on plain TPU VMs (`ray start` on each, no
Kubernetes) as well as on GKE (KubeRay), and the driver is this same Python program. XPK / JobSet
would make each run a Kubernetes workload: the dependency order, the queue and the retry would be a
scheduler of our own polling `kubectl`, and it needs a GKE cluster. The run directories stay the
ledger (`sweep.py`): the Ray cluster holds no state worth keeping, so a sweep resumes from any driver,
with any cluster, or with the local backend.

Placement: `slice_type` (e.g. v4-32) reserves a slice per run through Ray's TPU slice placement groups
(one task per host: Ray's `TPU-<type>-head` resource picks the slice, `TPU` the chips of each host);
without it a run is one task with `cell_resources` (e.g. {"TPU": 4} on a single-host v4-8 VM,
{"GPU": 1}, or one CPU).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from xtjax.errors import ConfigError
from xtjax.experiments import sweep
from xtjax.io_utils import run_path

log = logging.getLogger(__name__)


def _host_run(run: sweep.Run, train_fn, latency_iters: int | None, upstream: str | None = None) -> str:
  """On one host (a fresh Ray worker process): joins the slice's JAX processes, trains the run, then
  measures a target run's latency on the same device kind. Returns the run's outcome."""
  if upstream not in (None, "done"):  # its intermediate run failed or was interrupted
    return "skipped"
  import jax

  from xtjax.parallel.distributed import maybe_initialize

  maybe_initialize()
  if train_fn is None:
    from xtjax.train.loop import train as train_fn
  primary = jax.process_index() == 0
  outcome = sweep.execute_run(run, train_fn, primary)
  if outcome == "done" and run.kind == "target" and latency_iters and primary:
    sweep.measure_run_latency(run.run_dir, latency_iters)
  return outcome


def _slice_run(run: sweep.Run, train_fn, latency_iters: int | None, slice_type: str,
               upstream: str | None = None) -> str:
  """Reserves one slice of `slice_type` and runs the phase on every host of it."""
  if upstream not in (None, "done"):
    return "skipped"
  import ray
  from ray.util.tpu import run_on_slice

  version, topology = _slice_topology(slice_type)
  host = ray.remote(max_calls=1)(_host_run)
  return ray.get(run_on_slice(host, run, train_fn, latency_iters, topology=topology,
                              accelerator_version=version))[0]


# Our chip generations (libtpu's topology prefixes) by the name Ray's TPU utilities use.
RAY_TPU_VERSION = {"v5": "v5p", "v5e": "v5litepod"}


def _slice_topology(slice_type: str) -> tuple[str, str]:
  """`v4-32` -> ("v4", "2x2x4"): Ray's accelerator version and topology of a Cloud TPU slice name."""
  from xtjax.parallel import topology

  s = topology.parse(slice_type)
  if s.chip is None:
    raise ConfigError(f"--slice {slice_type}: a TPU slice type such as v4-32 or v5e-16")
  version = RAY_TPU_VERSION.get(s.chip.generation, s.chip.generation)
  return version, "x".join(map(str, s.grid))


def run_sweep_ray(cfg: sweep.SweepConfig, pipeline_path: Path, workdir: str | Path, where: str = "sweep",
                  train_fn=None, address: str | None = None, slice_type: str | None = None,
                  cell_resources: dict | None = None, retries: int = 2) -> dict:
  """Runs every pending / interrupted / failed run as a Ray task, targets after their intermediate run.

  `address`: a running cluster ("auto", "ray://host:10001"); None starts a local Ray (or uses the one
  this process already started). `retries`: Ray re-runs a task whose worker or node died (it resumes
  from the run's checkpoints); after that the run is recorded as failed and retried by the next sweep.
  """
  import ray

  workdir = run_path(workdir)
  if slice_type is not None:
    _slice_topology(slice_type)  # a bad slice name fails before anything is submitted
  cells, runs = sweep.prepare(cfg, pipeline_path, workdir, where)
  if not ray.is_initialized():
    ray.init(address=address, log_to_driver=True)
  latency_iters = cfg.latency_iters if cfg.latency else None
  if slice_type is not None:
    task = ray.remote(_slice_run).options(num_cpus=0, max_retries=retries)
    submit = lambda run, dep: task.remote(run, train_fn, latency_iters, slice_type, dep)  # noqa: E731
  else:
    resources = dict(cell_resources or {"CPU": 1})
    num_cpus = resources.pop("CPU", 0)
    task = ray.remote(max_calls=1)(_host_run).options(num_cpus=num_cpus, resources=resources, max_retries=retries)
    submit = lambda run, dep: task.remote(run, train_fn, latency_iters, dep)  # noqa: E731
  refs: dict[Path, object] = {}
  for run in runs:  # intermediates first
    dep = refs.get(run.after) if run.after is not None else None
    if dep is None and not sweep.should_start(run):
      continue
    if dep is not None and sweep.run_status(run.run_dir) in ("done", "running"):
      continue
    refs[run.run_dir] = submit(run, dep)  # a target's task waits for its intermediate run's result
  log.info("ray: %d phase runs submitted (%s)", len(refs), ray.cluster_resources())
  run_of = {r.run_dir: r for r in runs}
  by_ref = {ref: run_of[d] for d, ref in refs.items()}
  while by_ref:
    ready, _ = ray.wait(list(by_ref), num_returns=1)
    run = by_ref.pop(ready[0])
    try:
      outcome = ray.get(ready[0])
    except ray.exceptions.RayError as e:
      outcome = _lost(run, e)
    log.info("%s: %s", run.run_dir.name, outcome)
  return sweep.status_counts(cells)


def _lost(run: sweep.Run, error: Exception) -> str:
  """A task that raised in Ray itself (its worker or node died, or its intermediate run's did)."""
  if run.after is not None and sweep.run_status(run.after) != "done":
    return "skipped"
  first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
  # The dead worker's lease is taken over by the next sweep (same host: its pid is gone; else after
  # `lease.STALE_S` without a heartbeat).
  sweep.record_error(run.run_dir, f"{type(error).__name__}: {first_line}", str(error))
  log.error("%s: lost (%s); its checkpoints resume it on the next sweep", run.run_dir.name, type(error).__name__)
  return "failed"


def parse_resources(text: str | None) -> dict | None:
  """`--cell-resources '{"TPU": 4}'` -> {"TPU": 4.0}; one line naming the flag on bad input."""
  if text is None:
    return None
  try:
    value = json.loads(text)
  except json.JSONDecodeError as e:
    raise ConfigError(f"--cell-resources: not JSON ({e.msg}): {text!r}") from None
  if not isinstance(value, dict) or not all(isinstance(v, (int, float)) and v >= 0 for v in value.values()):
    raise ConfigError(f"--cell-resources: a JSON object of resource -> amount, got {text!r}")
  return {str(k): float(v) for k, v in value.items()}
