"""`xtjax plan --search`: for each remat policy the mesh (data x fsdp x tensor) with the highest estimated
throughput among those that fit, then the largest per-device batch that fits it (bisection over compiles).

Throughput is estimated, not measured: the analytic FLOPs (`perf.flops`, what MFU counts) times what
the policy recomputes, at `MFU` of the chip's peak, plus the mesh's collectives over the chip's ICI
bandwidth without overlap (FSDP gathers the weights forward and backward and reduce-scatters the
gradients, data parallelism all-reduces the gradients, tensor parallelism all-reduces two activations
per layer forward and two backward). Memory is XLA's, from compiling the train step.
"""

from __future__ import annotations

import dataclasses
import logging

from xtjax.errors import ConfigError
from xtjax.models.remat import POLICIES, REMAT_CHOICES
from xtjax.parallel import plan as aot
from xtjax.parallel import topology
from xtjax.perf import flops
from xtjax.runs.schema import TrainConfig
from xtjax.train.plan import plan

log = logging.getLogger(__name__)

MFU = 0.5
# Share of a training step's model FLOPs that each policy adds by recomputing in the backward pass:
# `full` reruns the forward (1 of the 3 forward+backward units); the name-saving policies rerun only
# attention scores and element-wise work, which FLOP counts leave out (`remat.Policy.recompute`).
RECOMPUTE = {name: p.recompute / 3 for name, p in POLICIES.items()}
# Offloading trades host transfers, not FLOPs; the save_* subsets lie between these.
SEARCHED_REMATS = ("none", "minimal_with_context", "minimal", "save_qkv_proj", "full")


def mesh_shapes(devices: int, max_tensor: int = 8) -> list[tuple[int, int, int]]:
  """Every (data, fsdp, tensor) with data * fsdp * tensor == devices and tensor <= max_tensor."""
  out = []
  for t in range(1, min(devices, max_tensor) + 1):
    if devices % t:
      continue
    rest = devices // t
    out += [(d, rest // d, t) for d in range(1, rest + 1) if rest % d == 0]
  return out


def _with(cfg: TrainConfig, mesh: tuple[int, int, int] | None, remat: str | None = None,
          batch_size: int | None = None) -> TrainConfig:
  """`cfg` with another mesh (None: its own), remat policy and batch size."""
  model = cfg.model
  if remat is not None:
    model = dataclasses.replace(model, config_overrides={**model.config_overrides, "remat": remat})
  mesh_cfg = cfg.mesh if mesh is None else dataclasses.replace(cfg.mesh, data=mesh[0], fsdp=mesh[1], tensor=mesh[2])
  return dataclasses.replace(cfg, model=model, mesh=mesh_cfg, batch_size=batch_size or cfg.batch_size)


def comm_seconds(enc_cfg, num_params: int, mesh: tuple[int, int, int], batch: int, length: int,
                 bandwidth: float, layers: int) -> float:
  """Seconds of collectives per step on one device (ring algorithms, no overlap with compute)."""
  d, f, t = mesh
  param_bytes = 4 * num_params / t  # f32 weights and gradients held per tensor shard
  compute_bytes = 2 * num_params / t  # bf16 weights as gathered for the matmuls
  moved = 0.0
  if f > 1:
    moved += (2 * compute_bytes + param_bytes) * (f - 1) / f
  if d > 1:
    moved += 2 * param_bytes / f * (d - 1) / d
  if t > 1:
    activation = 2 * batch / (d * f) * length * enc_cfg.hidden_size
    moved += 4 * layers * 2 * activation * (t - 1) / t
  return moved / bandwidth


def estimate(result: dict, remat: str, bandwidth: float, peak: float) -> dict:
  """Step seconds and examples per second of a compiled plan `result`."""
  enc = result["encoder_config"]
  model_flops = flops.train_flops(enc, result["batch_size"], result["max_length"], result["head_type"],
                                  result["num_labels"], result["choices"], result["max_target_length"])
  model_flops /= result["devices"]
  compute = model_flops * (1 + RECOMPUTE[remat]) / (peak * MFU)
  mesh = (result["mesh"]["data"], result["mesh"]["fsdp"], result["mesh"]["tensor"])
  layers = enc.layers_run(text_to_text=result["head_type"] == "text_to_text")
  comm = comm_seconds(enc, result["num_params"], mesh, result["batch_size"], result["max_length"], bandwidth, layers)
  step = compute + comm
  return {"compute_seconds": compute, "comm_seconds": comm, "step_seconds": step,
          "examples_per_second": result["batch_size"] / step}


def _try(cfg: TrainConfig, slice_, choices: int, hbm: float):
  try:
    r = plan(cfg, slice_, choices, compile_eval=False)
  except ConfigError as e:  # a mesh that cannot split the batch
    return None, str(e)
  peak = r["per_device"]["total"]
  return r, (peak <= aot.HEADROOM * hbm)


def largest_batch(cfg: TrainConfig, slice_, choices: int, hbm: float, limit: int = 4096) -> tuple[int, dict | None]:
  """The largest per-device batch (a multiple of the data-parallel size) whose train step fits: doubling,
  then bisection. (0, None) when even one example per data-parallel device does not fit."""
  devs = slice_.devices_per_slice * slice_.num_slices
  d, f, t = cfg.mesh.resolve(devs)[:3]
  n_data = d * f
  micro = cfg.optim.grad_accum_steps

  def fits(per_device: int):
    r, ok = _try(dataclasses.replace(cfg, batch_size=per_device * n_data * micro), slice_, choices, hbm)
    return (r if ok is True else None)

  lo, best = 0, None
  hi = 1
  while hi <= limit:
    r = fits(hi)
    if r is None:
      break
    lo, best, hi = hi, r, hi * 2
  else:
    return lo, best
  while hi - lo > 1:
    mid = (lo + hi) // 2
    r = fits(mid)
    if r is None:
      hi = mid
    else:
      lo, best = mid, r
  return lo, best


def search(cfg: TrainConfig, slice_: topology.Slice, choices: int = 4, remats=SEARCHED_REMATS, meshes=None,
           hbm_bytes: float | None = None, bandwidth: float | None = None, peak: float | None = None,
           find_batch: bool = True) -> dict:
  """{"policies": [one row per remat policy: best mesh, its memory and throughput], "best": ...,
  "largest_batch": {"per_device", "global", "peak_bytes"} for the best policy and mesh}."""
  chip = slice_.chip
  hbm = hbm_bytes if hbm_bytes is not None else (chip.hbm_bytes if chip is not None else None)
  bandwidth = bandwidth if bandwidth is not None else (chip.ici_bytes_per_second if chip is not None else None)
  peak = peak if peak is not None else (chip.peak_bf16 if chip is not None else None)
  if hbm is None or bandwidth is None or peak is None:
    raise ConfigError(f"plan --search on {slice_.name}: no HBM size, ICI bandwidth or peak FLOP/s to search "
                      "against; use a TPU slice (v4-8, v5e-16, ...)")
  devs = slice_.devices_per_slice * slice_.num_slices
  meshes = meshes or mesh_shapes(devs)
  rows = []
  for remat in remats:
    candidates = []
    for mesh in meshes:
      r, ok = _try(_with(cfg, mesh, remat), slice_, choices, hbm)
      if r is None:
        log.info("search: remat %s mesh %s skipped (%s)", remat, mesh, ok)
        continue
      est = estimate(r, remat, bandwidth, peak)
      candidates.append({"remat": remat, "mesh": dict(zip(("data", "fsdp", "tensor"), mesh)), "fits": ok,
                         "peak_bytes": r["per_device"]["total"], **est})
    fitting = [c for c in candidates if c["fits"]]
    best = (max(fitting, key=lambda c: c["examples_per_second"]) if fitting
            else min(candidates, key=lambda c: c["peak_bytes"]) if candidates else None)
    rows.append({"remat": remat, "best": best, "candidates": candidates})
  fitting = [row["best"] for row in rows if row["best"] is not None and row["best"]["fits"]]
  overall = max(fitting, key=lambda c: c["examples_per_second"]) if fitting else None
  out = {"topology": slice_.name, "devices": devs, "hbm_bytes": hbm, "headroom": aot.HEADROOM, "mfu": MFU,
         "ici_bytes_per_second": bandwidth, "batch_size": cfg.batch_size, "policies": rows, "best": overall,
         "largest_batch": None}
  if find_batch and overall is not None:
    m = overall["mesh"]
    best_cfg = _with(cfg, (m["data"], m["fsdp"], m["tensor"]), overall["remat"])
    per_device, r = largest_batch(best_cfg, slice_, choices, hbm)
    n_data = m["data"] * m["fsdp"]
    out["largest_batch"] = {"per_device": per_device, "global": per_device * n_data * cfg.optim.grad_accum_steps,
                            "peak_bytes": r["per_device"]["total"] if r else None}
  return out


def remat_table(cfg: TrainConfig, slice_: topology.Slice, choices: int = 4, remats=REMAT_CHOICES) -> dict:
  """`xtjax plan --remat-table`: the train step compiled once per remat policy on the config's mesh;
  per-device temporaries and peak of each, what each saves against `none`, XLA's FLOPs of each and the
  share of `full`'s recomputation they amount to (near 1: `full` in disguise, near 0: no matmul rerun)."""
  rows = []
  for remat in remats:
    r = plan(_with(cfg, None, remat), slice_, choices, compile_eval=False)
    train = r["programs"][0] if r["programs"] else None  # none: the compiler refused it (`r["overflow"]`)
    rows.append({"remat": remat, "temp_bytes": r["per_device"]["activations_and_temporaries"],
                 "peak_bytes": r["per_device"]["total"], "flops": train["flops"] if train else None, "fits": r["fits"],
                 "compile_cpu_seconds": train["compile_cpu_seconds"] if train else None})
  by_name = {row["remat"]: row for row in rows}
  none, full = by_name.get("none"), by_name.get("full")
  for row in rows:
    row["saved_bytes"] = None if none is None else none["peak_bytes"] - row["peak_bytes"]
    known = none is not None and full is not None and None not in (row["flops"], none["flops"], full["flops"])
    extra = full["flops"] - none["flops"] if known else None
    row["recompute_of_full"] = (row["flops"] - none["flops"]) / extra if extra else None
  return {"topology": slice_.name, "devices": r["devices"], "mesh": r["mesh"], "batch_size": cfg.batch_size,
          "max_length": cfg.features.max_length, "hbm_bytes": r["hbm_bytes"], "headroom": aot.HEADROOM, "policies": rows,
          # XLA's cost analysis counts a loop body once: of a scanned stack, the FLOPs of one layer (+ the rest).
          "flops_count_one_scanned_layer": r["encoder_config"].stacked_layers}
