"""Compiled confirmation of docs/scale.md's analytic rows: `scripts/scale_table.py --compile`.

For a table cell (row, task, TPU generation) the analytic model picks a (slice, remat, accum). `confirm`
compiles the real train step for it through `xtjax.train.plan.plan` (what `xtjax plan` runs) and, while
XLA's per-device peak does not fit, the following candidates in the table's order (more micro-batches,
then `full` remat, then the next slice; a slice whose compiled fixed part alone overflows is skipped).
Results live in a JSON cache next to the doc, one entry per cell holding the inputs it was compiled
for (the model and train config's hash, the analytic choice) and the hash of the program its first try
compiled (`xtjax.parallel.plan.program_hash`, the lowered StableHLO); a cell whose inputs changed since, or
whose train step lowers to another program today, is reported stale, never reused.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import fcntl
import hashlib
import importlib.metadata
import json
import multiprocessing
import os
import re
import statistics
import tempfile
from pathlib import Path

GiB = 1024 ** 3
MAX_TRIES = 4  # compiles per cell before the cell is reported as unresolved
# libtpu's refusals of a program larger than HBM (`xtjax.parallel.plan.hbm_overflow` reads their figures)
_OOM = re.compile(r"RESOURCE_EXHAUSTED|[Rr]an out of memory|Exceeded hbm capacity")


def cell_key(label: str, head: str, task: str, gen: str) -> str:
  return f"{label} | {head} | {task} | {gen}"


def choice_of(c: dict) -> dict:
  return {"slice": c["slice"], "remat": c["remat"], "accum": c["accum"]}


def choice_text(c: dict) -> str:
  return f"{c['slice']} ({c['remat']}, {c['accum']})"


# Model fields added after cells were compiled, at the value that lowers to the program those cells were
# compiled from (checked by its hash): left out, so the cells stay valid.
NEUTRAL_MODEL_FIELDS = {"attention_impl": "xla"}
# Train-config fields added since cells were compiled, at values that change no program (packing off).
NEUTRAL_FEATURE_FIELDS = {"pack": False}


def inputs_hash(cfg, model_cfg) -> str:
  """The resolved train and model configs a cell is compiled from (the program itself is checked by its hash,
  `program_of`)."""
  model = {k: v for k, v in dataclasses.asdict(model_cfg).items() if NEUTRAL_MODEL_FIELDS.get(k, object()) != v}
  train = dataclasses.asdict(cfg)
  train["features"] = {k: v for k, v in train["features"].items() if NEUTRAL_FEATURE_FIELDS.get(k, object()) != v}
  text = json.dumps({"train": train, "model": model}, sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def load(path) -> dict:
  path = Path(path)
  if not path.exists():
    return {}
  try:
    data = json.loads(path.read_text())
  except json.JSONDecodeError as e:
    raise SystemExit(f"{path}: not JSON ({e}); delete it to recompile every cell")
  if not isinstance(data, dict) or not all(isinstance(v, dict) and "tries" in v for v in data.values()):
    raise SystemExit(f"{path}: expected {{cell: {{inputs, analytic_choice, tries, ...}}}}")
  return data


def save(path, cache: dict) -> None:
  """Whole or not at all: written next to the target, then renamed over it."""
  path = Path(path)
  tmp = path.with_suffix(path.suffix + ".tmp")
  tmp.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n")
  os.replace(tmp, path)


def put(path, key: str, value: dict) -> None:
  """Adds one cell's entry to the cache file under a lock, so that concurrent `--compile` runs keep each other's."""
  path = Path(path)
  name = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
  with open(Path(tempfile.gettempdir()) / f"scale_compiled.{name}.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    cache = load(path)
    cache[key] = value
    save(path, cache)


def lookup(cache: dict, key: str, inputs: str, analytic: dict | None, program_of) -> tuple[dict | None, str]:
  """(entry, status): the entry only when it was compiled for these inputs and this analytic choice, and the
  train step of that choice lowers today to the program its first try compiled (`program_of(choice)`: the
  hash, lowered only; so a change to code the step does not run leaves the compiles valid)."""
  entry = cache.get(key)
  if entry is None:
    return None, "estimate only"
  if entry["inputs"] != inputs:
    return None, "stale: model or train config changed since the compile; estimate only"
  if analytic is None or entry["analytic_choice"] != choice_of(analytic):
    now = choice_text(analytic) if analytic else "none"
    return None, (f"stale: compiled from {choice_text(entry['analytic_choice'])}, the estimate now picks {now}; "
                  "estimate only")
  compiled_program = entry["tries"][0].get("program") if entry["tries"] else None
  if compiled_program != program_of(choice_of(analytic)):
    return None, "stale: the train step's program (its lowered StableHLO) changed since the compile; estimate only"
  return entry, f"compiled on libtpu {entry['libtpu']}, {entry['date']}"


def fitting_try(entry: dict) -> dict | None:
  return next((t for t in entry["tries"] if t["fits"]), None)


def lower_bound(t: dict) -> float | None:
  """Per-device bytes a try is known to need: XLA's peak, or what libtpu's refusal names (temporaries alone)."""
  return t["peak_bytes"] if t.get("peak_bytes") is not None else t.get("temp_bytes")


def confirm(candidates, analytic: dict, compile_fn, hbm: float, headroom: float, max_tries: int = MAX_TRIES,
            done: list[dict] = ()) -> list[dict]:
  """Compiles `analytic`, then later candidates the estimate also fits, until one fits or `max_tries` more;
  `done`, the tries of an earlier run that found no fit, resumes after its last try."""
  tries, skip, started = list(done), None, False
  start = choice_of(done[-1]) if done else choice_of(analytic)
  for t in done:
    skip = t["slice"] if _overflows(t, headroom * hbm) else skip
  for c in candidates:
    if not started:
      started = choice_of(c) == start
      if done or not started:
        continue
    if not c["fits"] or c["slice"] == skip:
      continue
    r = compile_fn(c)
    tries.append({**choice_of(c), "devices": c["devices"], "analytic_total": c["total"],
                  "analytic_activations": c["total"] - c["state"], **r})
    if r["fits"] or len(tries) - len(done) >= max_tries:
      break
    if _overflows(tries[-1], headroom * hbm):
      skip = c["slice"]
  return tries


def _overflows(t: dict, budget: float) -> bool:
  """Under `full` remat (the strongest policy tried) what the compile needs beyond the estimated activations
  does not shrink with more accum: when that alone overflows, no later candidate of the slice fits. (Under
  `none` the estimate may miss most of the activations, so `full` is still tried; a crash says nothing.)"""
  known = lower_bound(t)
  return (t["fits"] is False and t["remat"] == "full" and known is not None
          and known - t["analytic_activations"] > budget)


def entry(inputs: str, analytic: dict, tries: list[dict]) -> dict:
  return {"inputs": inputs, "analytic_choice": choice_of(analytic), "tries": tries,
          "libtpu": importlib.metadata.version("libtpu"), "jax": importlib.metadata.version("jax"),
          "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")}


def isolated(fn, *args) -> dict:
  """fn(*args) in a fresh process, so that a compiler crash (libtpu segfaults on some programs) becomes a
  result of the cell instead of the end of the whole run."""
  with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
    try:
      return pool.submit(fn, *args).result()
    except concurrent.futures.process.BrokenProcessPool:
      return {"fits": None, "peak_bytes": None, "error": "the compiler's process died (libtpu crashed)"}


def oom_result(text: str) -> dict:
  """libtpu's refusal of a program larger than HBM: the peak, or the temporaries alone, that it names."""
  from xtjax.parallel.plan import hbm_overflow

  return overflow_result(hbm_overflow("train_step", text), text)


def overflow_result(overflow, text: str) -> dict:
  """A cell's try from an `Overflow` (None: a refusal whose figures are unknown)."""
  needed = overflow.needed if overflow else None
  return {"fits": False, "peak_bytes": overflow.needed_bytes if needed == "peak" else None,
          "temp_bytes": overflow.needed_bytes if needed == "temporaries" else None,
          "error": text.strip().splitlines()[0][:300]}


def compile_train_step(cfg, slice_name: str) -> dict:
  """XLA's per-device numbers for the train step of `cfg` on a described slice (`xtjax plan`'s code)."""
  from jax.errors import JaxRuntimeError

  from xtjax.parallel import topology
  from xtjax.train.plan import plan

  try:
    r = plan(cfg, topology.parse(slice_name), compile_eval=False)
  except JaxRuntimeError as e:
    text = str(e)
    if not _OOM.search(text):
      raise
    return oom_result(text)
  if r["overflow"] is not None:  # `plan`'s own answer to a refusal
    from xtjax.parallel.plan import Overflow

    overflow = Overflow(**r["overflow"])
    return overflow_result(overflow, overflow.message)
  p = r["programs"][0]
  return {"fits": bool(r["fits"]), "peak_bytes": p["peak_bytes"], "temp_bytes": p["temp_bytes"],
          "argument_bytes": p["argument_bytes"], "flops": p["flops"], "compile_seconds": p["compile_seconds"],
          "compile_cpu_seconds": p["compile_cpu_seconds"], "program": p["program"]}


def lower_train_step(cfg, slice_name: str) -> str:
  """The program hash of the train step `compile_train_step` would compile (lowered only: seconds)."""
  from xtjax.parallel import topology
  from xtjax.train.plan import train_program_hash

  return train_program_hash(cfg, topology.parse(slice_name))


def measured_error(entries) -> str:
  """Compiled against estimated per-device memory over every compiled try: the total, and what XLA needs
  beyond the exact state (parameters, gradients, optimizer) against the estimated activations."""
  tries = [t for e in entries for t in e["tries"] if t["peak_bytes"] and t["analytic_total"]]
  if not tries:
    return "No cell has been compiled yet: every number below is the analytic estimate."
  total = [t["peak_bytes"] / t["analytic_total"] for t in tries]
  beyond = [(t["peak_bytes"] - t["analytic_total"] + t["analytic_activations"]) / t["analytic_activations"]
            for t in tries if t["analytic_activations"]]
  return (f"over the {len(tries)} compiled train steps, XLA's per-device peak is {statistics.median(total):.2f}x "
          f"the estimate (median; range {min(total):.2f}x-{max(total):.2f}x), and what it needs beyond the exact "
          f"state is {statistics.median(beyond):.1f}x the estimated activations (median; range "
          f"{min(beyond):.1f}x-{max(beyond):.1f}x).")
