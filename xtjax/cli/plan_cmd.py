"""`xtjax plan CONFIG [key=value ...] --topology v4-32`: does the run fit, and what does a step cost?

A run that does not fit is an answer, not an error: exit 0, `fits: false` in `--json` (with `overflow`, the
figures of the compiler's refusal when it refused the program) and a "does not fit: ..." line in the text.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re

GiB = 1024 ** 3
MFUS = (0.4, 0.5, 0.6)


def register(sub) -> None:
  p = sub.add_parser("plan", help="compile a run's train and eval steps for a TPU slice; memory, FLOPs, shardings")
  p.add_argument("config", nargs="?", default=None, help="YAML train config (optional with --preset)")
  p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. batch_size=32 mesh.fsdp=-1")
  p.add_argument("--topology", required=True, help="v4-32, v5e-256, v5p-128, v6e-64, v4:2x2x2 or cpu:8")
  p.add_argument("--slices", type=int, default=1, help="number of slices (the data axis spans them over DCN)")
  p.add_argument("--preset", default=None,
                 help="model preset (e.g. xlmr-large); without CONFIG: MNLI, batch 32 x 128, bf16, fsdp over all devices")
  p.add_argument("--phase", default=None, help="with a pipeline CONFIG: the phase to plan (e.g. intermediate-mnli)")
  p.add_argument("--choices", type=int, default=4, help="answer choices per example for multiple-choice tasks")
  p.add_argument("--no-eval", action="store_true", help="compile the train step only")
  p.add_argument("--memory-only", action="store_true",
                 help="compile nothing: parameters, optimizer state and gradients per device (a lower bound)")
  p.add_argument("--search", action="store_true",
                 help="for each remat policy the mesh (data x fsdp x tensor) with the highest estimated throughput "
                      "that fits, then the largest per-device batch that fits (compiles the train step many times)")
  p.add_argument("--remat-table", action="store_true",
                 help="compile the train step once per remat policy (none, full, dots_saveable, ...) on the config's "
                      "mesh: per-device temporaries and peak, the memory each saves against none, and XLA's FLOPs "
                      "of each (a policy recomputing as much as full shows it)")
  p.add_argument("--meshes", default=None,
                 help="with --search: comma-separated meshes DATAxFSDPxTENSOR to try (e.g. 1x16x1,1x4x4: T5X's "
                      "fsdp x model layouts); default: every factorisation of the slice with tensor <= 8")
  p.add_argument("--remats", default=None,
                 help="with --remat-table or --search: comma-separated policies to compile (default: every policy "
                      "of xtjax.models.remat for the table; none, minimal_with_context, minimal, save_qkv_proj, full "
                      "for the search)")
  p.add_argument("--notice-s", type=float, default=None,
                 help="seconds between a preemption notice and shutdown that a save must fit (default 30: spot VMs)")
  p.add_argument("--disk-mb-s", type=float, default=None,
                 help="local disk write bandwidth per host in MB/s for the checkpoint estimate (default 200)")
  p.add_argument("--gcs-mb-s", type=float, default=None,
                 help="GCS write bandwidth per host in MB/s for the checkpoint estimate (default 500)")
  p.add_argument("--buffers", type=int, default=0, metavar="N",
                 help="also name the N largest temporaries of the compiled train step (size, shape, the JAX "
                      "operation that made them), from the compiler's buffer assignment")
  p.add_argument("--json", action="store_true", help="print the plan as JSON")
  p.set_defaults(func=run)


# What `--preset` alone plans: XLM-R's MNLI fine-tuning (Conneau et al. 2020: batch 32, length 128).
PRESET_RUN = {"tasks": [{"name": "mnli"}], "batch_size": 32, "eval_batch_size": 64,
              "features": {"max_length": 128}, "mesh": {"data": 1, "fsdp": -1},
              "model": {"dtype": "bfloat16"}}


def _phase_dict(config: str, phase: str) -> dict:
  """A pipeline phase's TrainConfig keys; `init_from` dropped (the encoder has the pretrained shapes)."""
  from pathlib import Path

  from xtjax.errors import ConfigError
  from xtjax.experiments.pipeline import load_pipeline, phase_configs

  phases = {name: d for name, _, d in phase_configs(load_pipeline(config), Path("runs"), config)}
  if phase not in phases:
    raise ConfigError(f"{config}: no phase {phase!r} (phases: {sorted(phases)})")
  return {k: v for k, v in phases[phase].items() if k != "init_from"}


def load_plan_config(config: str | None, overrides, preset: str | None, phase: str | None = None):
  from pathlib import Path

  from xtjax import config as config_lib
  from xtjax.errors import ConfigError
  from xtjax.runs.schema import TrainConfig

  if config is None:
    if preset is None:
      raise ConfigError("plan: give a CONFIG, --preset, or both")
    data, where = json.loads(json.dumps(PRESET_RUN)), f"--preset {preset}"
  elif phase is not None:
    data, where = _phase_dict(config, phase), f"{config} [phase {phase}]"
  else:
    data, where = config_lib.read_with_bases(Path(config)), config
    if "defaults" in data:
      raise ConfigError(f"{config}: a pipeline config; choose a phase with --phase (phases: " + ", ".join(
          p["name"] for p in [data.get("intermediate"), *(data.get("targets") or [])] if p) + ")")
  if preset is not None:
    data["model"] = dict(data.get("model", {}), preset=preset, pretrained=None)
  config_lib.apply_overrides(data, overrides)
  return config_lib.from_dict(TrainConfig, data, where + (" (with overrides)" if overrides else ""))


def _host_backend_only(slice_) -> None:
  """Before JAX starts: its backends on this host's CPU only (a plan compiles for a described slice and
  never drives a local accelerator, so it can run beside a training on the same TPU VM), and as many CPU
  devices as a `cpu:N` or `--memory-only` slice stands on (XLA reads their count from its flags)."""
  import jax
  from jax._src import xla_bridge

  if xla_bridge.backends_are_initialized():
    return
  jax.config.update("jax_platforms", "cpu")
  if slice_.chip is not None and not slice_.on_cpu:
    return
  want = slice_.devices_per_slice * slice_.num_slices
  flags = os.environ.get("XLA_FLAGS", "")
  m = re.search(r"--xla_force_host_platform_device_count=(\d+)", flags)
  if m is None:
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={want}".strip()
  elif int(m.group(1)) < want:
    os.environ["XLA_FLAGS"] = flags.replace(m.group(0), f"--xla_force_host_platform_device_count={want}")


def save_settings(notice_s: float | None, disk_mb_s: float | None, gcs_mb_s: float | None) -> tuple[float, dict]:
  """(notice seconds, store -> bytes/s) from the flags, checked before anything compiles."""
  from xtjax.errors import ConfigError
  from xtjax.train import save_time

  bandwidth = dict(save_time.BANDWIDTH)
  for flag, store, mb_s in (("--disk-mb-s", "local disk", disk_mb_s), ("--gcs-mb-s", "gcs", gcs_mb_s)):
    if mb_s is not None:
      if not mb_s > 0:
        raise ConfigError(f"{flag}: must be > 0, got {mb_s:g}")
      bandwidth[store] = mb_s * 1e6
  if notice_s is not None and not notice_s > 0:
    raise ConfigError(f"--notice-s: must be > 0, got {notice_s:g}")
  return (save_time.NOTICE_S if notice_s is None else notice_s), bandwidth


def add_estimates(result: dict, saving: tuple[float, dict] | None = None) -> dict:
  """Analytic FLOPs (`perf.flops`, what MFU counts) and the step time they give at 40-60% MFU; how long a
  checkpoint takes to write per host and whether it fits a preemption notice (`train.save_time`)."""
  from xtjax.perf import flops
  from xtjax.parallel.plan import step_seconds
  from xtjax.train import save_time

  notice_s, bandwidth = saving if saving is not None else save_settings(None, None, None)
  est = save_time.estimate(result["checkpoint_bytes"], result["hosts"], notice_s, bandwidth)
  result["checkpoint"] = dataclasses.asdict(est) | {"bytes_per_host": est.bytes_per_host,
                                                    "fits_notice": est.fits_notice}
  enc = result["encoder_config"]
  analytic = flops.train_flops(enc, result["batch_size"], result["max_length"], result["head_type"],
                               result["num_labels"], result["choices"], result["max_target_length"])
  per_device = analytic / result["devices"]
  result["flops_per_device"] = {"analytic": per_device, "compiled": result["programs"][0]["flops"] if result["programs"] else None}
  # XLA's cost analysis counts a loop body once, whatever its trip count.
  result["compiled_flops_count_one_scanned_layer"] = enc.stacked_layers
  peak = result["peak_bf16"]
  result["step_seconds_at_mfu"] = ({f"{int(m * 100)}%": step_seconds(per_device, peak, m) for m in MFUS}
                                   if peak is not None else None)
  return result


def run(args: argparse.Namespace) -> int:
  if args.config is not None and "=" in args.config:  # `plan --preset P k=v`: no CONFIG, only overrides
    args.config, args.overrides = None, [args.config] + list(args.overrides)
  from xtjax.parallel import topology

  saving = save_settings(args.notice_s, args.disk_mb_s, args.gcs_mb_s)
  slice_ = topology.parse(args.topology, args.slices)
  if args.memory_only and not (args.search or args.remat_table):  # sizes only: CPU stand-ins, no libtpu
    slice_ = topology.on_cpu(slice_)
  _host_backend_only(slice_)
  from xtjax.train.plan import plan

  cfg = load_plan_config(args.config, args.overrides, args.preset, args.phase)
  if args.remat_table:
    from xtjax.train.plan_search import remat_table

    table = remat_table(cfg, slice_, args.choices, *([_remats(args.remats)] if args.remats else []))
    print(json.dumps(table, indent=2) if args.json else format_remat_table(table))
    return 0
  if args.search:
    from xtjax.train.plan_search import search

    found = search(cfg, slice_, args.choices, *([_remats(args.remats)] if args.remats else []),
                   meshes=_meshes(args.meshes, slice_) if args.meshes else None)
    print(json.dumps(found, indent=2, default=str) if args.json else format_search(found))
    return 0
  if args.buffers < 0 or (args.buffers and args.memory_only):
    from xtjax.errors import ConfigError

    raise ConfigError(f"--buffers {args.buffers}: " + ("a positive count" if args.buffers < 0 else
                                                       "needs a compile (drop --memory-only)"))
  result = add_estimates(plan(cfg, slice_, args.choices, not args.no_eval, not args.memory_only,
                              buffers=args.buffers), saving)
  result["encoder_config"] = dataclasses.asdict(result["encoder_config"])
  if args.json:
    print(json.dumps(result, indent=2, default=str))
    return 0
  print(format_plan(result))
  return 0


def _gib(n: float) -> str:
  return f"{n / GiB:8.2f} GiB"


def format_plan(r: dict) -> str:
  trained = "" if r["trained_params"] == r["num_params"] else f" ({r['trained_params'] / 1e6:.1f}M trained: LoRA)"
  targets = f" -> {r['max_target_length']} target tokens" if r.get("max_target_length") else ""
  lines = [f"{r['model']} {r['num_params'] / 1e6:.0f}M params{trained}, task {r['task']} ({r['head_type']}), batch "
           f"{r['batch_size']} x {r['max_length']}{targets} ({r['grad_accum_steps']} micro-batches), {r['dtype']} compute, "
           f"{r['param_dtype']} weights",
           f"{r['topology']}: {r['devices']} devices in {r['num_slices']} slice(s), mesh {r['mesh']}"]
  if r.get("left_out"):
    lo = r["left_out"]
    lines.append(f"left out (no head of the run reads the LM logits): {', '.join(lo['paths'])} "
                 f"({lo['params'] / 1e6:.0f}M params, kept in the source checkpoint)")
  lines += ["", "per device:"]
  for k, v in r["per_device"].items():
    lines.append(f"  {k:<28}{_gib(v) if v is not None else '   (not compiled)'}")
  if r.get("overflow"):  # the compiler refused a program: its figures are the answer
    from xtjax.parallel.plan import Overflow

    overflow = Overflow(**r["overflow"])
    lines.append(overflow.text())
    if overflow.largest_temporaries:
      from xtjax.parallel.buffers import Slot, format_slots

      lines += format_slots(overflow.name, overflow.needed_bytes, [Slot(**s) for s in overflow.largest_temporaries])
  elif r["hbm_bytes"] is not None:
    verdict = {True: "fits", False: "does NOT fit", None: "fits without activations (compile to know)"}[r["fits"]]
    lines.append(f"  {'HBM':<28}{_gib(r['hbm_bytes'])}  -> {verdict} (limit {int(r['headroom'] * 100)}% of HBM; "
                 f"{r['chip_source']})")
  lines.append("")
  for p in r["programs"]:
    lines.append(f"{p['name']}: compiled in {p['compile_seconds']:.1f}s ({p['compile_cpu_seconds']:.1f}s CPU, "
                 f"{p.get('lower_cpu_seconds', 0.0):.1f}s of it JAX trace+lower); "
                 f"arguments {_gib(p['argument_bytes'])}, "
                 f"temporaries {_gib(p['temp_bytes'])}, outputs {_gib(p['output_bytes'])} "
                 f"(aliased {_gib(p['alias_bytes'])}), peak {_gib(p['peak_bytes'])}; {p['flops']:.3e} FLOPs/device")
  for p in r["programs"]:
    if p.get("largest_temporaries"):
      from xtjax.parallel.buffers import Slot, format_slots

      lines += format_slots(p["name"], p["temp_bytes"], [Slot(**s) for s in p["largest_temporaries"]])
  f = r["flops_per_device"]
  compiled = f"{f['compiled']:.3e}" if f["compiled"] is not None else "(not compiled)"
  lines.append(f"train FLOPs per device per step: analytic {f['analytic']:.3e}, compiled {compiled}"
               + (" (XLA counts the scanned layer once)" if r.get("compiled_flops_count_one_scanned_layer") else ""))
  if r["step_seconds_at_mfu"]:
    lines.append("step time at " + ", ".join(f"{k} MFU {v * 1e3:.1f} ms" for k, v in r["step_seconds_at_mfu"].items()))
  if r.get("checkpoint"):
    from xtjax.train.save_time import SaveTime

    fields = {f.name for f in dataclasses.fields(SaveTime)}
    lines += ["", *SaveTime(**{k: v for k, v in r["checkpoint"].items() if k in fields}).lines()]
  lines += ["", "parameter shardings (shards = devices a tensor is split over; 1 = replicated):"]
  for row in r["shardings"]:
    flag = "  REPLICATED" if row["shards"] == 1 and r["devices"] > 1 else ""
    lines.append(f"  {row['path']:<58}{str(row['shape']):<20}{row['spec']:<32}{row['shards']:>5}{flag}")
  return "\n".join(lines)


def _remats(spec: str) -> tuple[str, ...]:
  """`--remats a,b`: the named policies, each checked (an unknown one is a one-line error)."""
  from xtjax.errors import ConfigError
  from xtjax.models.remat import REMAT_CHOICES

  names = tuple(n.strip() for n in spec.split(",") if n.strip())
  unknown = [n for n in names if n not in REMAT_CHOICES]
  if unknown or not names:
    raise ConfigError(f"--remats {spec!r}: unknown policy {unknown} (choices: {', '.join(REMAT_CHOICES)})")
  return names


def _meshes(spec: str, slice_) -> list[tuple[int, int, int]]:
  """`--meshes 1x16x1,1x4x4`: each (data, fsdp, tensor), checked against the slice's device count."""
  from xtjax.errors import ConfigError

  devices = slice_.devices_per_slice * slice_.num_slices
  out = []
  for item in (m.strip() for m in spec.split(",") if m.strip()):
    parts = item.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
      raise ConfigError(f"--meshes {spec!r}: {item!r} is not DATAxFSDPxTENSOR (e.g. 1x8x2)")
    d, f, t = map(int, parts)
    if d * f * t != devices:
      raise ConfigError(f"--meshes {spec!r}: {item} has {d * f * t} devices; {slice_.name} has {devices}")
    out.append((d, f, t))
  if not out:
    raise ConfigError(f"--meshes {spec!r}: no mesh given")
  return out


def format_remat_table(r: dict) -> str:
  hbm = f", HBM {r['hbm_bytes'] / GiB:.0f} GiB (limit {int(r['headroom'] * 100)}%)" if r["hbm_bytes"] else ""
  lines = [(f"train step per remat policy on {r['topology']} ({r['devices']} devices, mesh {r['mesh']}{hbm}), "
            f"batch {r['batch_size']} x {r['max_length']}:"),
           f"  {'remat':<34}{'temporaries':>14}{'peak/device':>14}{'saved vs none':>15}{'XLA FLOPs':>11}"
           f"{'of full recompute':>19}{'compile CPU s':>15}"]
  for row in r["policies"]:
    saved = _gib(row["saved_bytes"]) if row["saved_bytes"] is not None else "-"
    share = f"{row['recompute_of_full']:.0%}" if row["recompute_of_full"] is not None else "-"
    verdict = {True: "", False: "  does NOT fit", None: ""}[row["fits"]]
    temps = _gib(row["temp_bytes"]) if row["temp_bytes"] is not None else "-"
    cpu = f"{row['compile_cpu_seconds']:.1f}" if row["compile_cpu_seconds"] is not None else "refused"
    flops = f"{row['flops']:.3g}" if row["flops"] is not None else "-"
    lines.append(f"  {row['remat']:<34}{temps:>14}{_gib(row['peak_bytes']):>14}{saved:>15}{flops:>11}{share:>19}"
                 f"{cpu:>15}{verdict}")
  lines.append("  XLA FLOPs per device" + (", a scanned stack's body counted once (one layer)"
                                            if r["flops_count_one_scanned_layer"] else "")
               + "; of full recompute: (FLOPs - none's) / (full's - none's), ~100%: `full` in disguise")
  return "\n".join(lines)


def format_search(r: dict) -> str:
  lines = [f"search on {r['topology']} ({r['devices']} devices, HBM {r['hbm_bytes'] / GiB:.0f} GiB, limit "
           f"{int(r['headroom'] * 100)}%, {int(r['mfu'] * 100)}% MFU, ICI {r['ici_bytes_per_second'] / 1e9:.0f} GB/s), "
           f"batch {r['batch_size']}:",
           f"  {'remat':<34}{'mesh d x f x t':<16}{'peak/device':>14}{'step ms':>10}{'comm ms':>10}{'examples/s':>12}"]
  for row in r["policies"]:
    b = row["best"]
    if b is None:
      lines.append(f"  {row['remat']:<34}(no mesh compiled)")
      continue
    m = b["mesh"]
    lines.append(f"  {row['remat']:<34}{m['data']}x{m['fsdp']}x{m['tensor']:<11}{_gib(b['peak_bytes']):>14}"
                 f"{b['step_seconds'] * 1e3:>10.1f}{b['comm_seconds'] * 1e3:>10.1f}{b['examples_per_second']:>12.1f}"
                 + ("" if b["fits"] else "  does NOT fit"))
  best, lb = r["best"], r["largest_batch"]
  if best is None:
    lines.append("nothing fits: try a larger slice")
    return "\n".join(lines)
  m = best["mesh"]
  lines.append(f"best: remat {best['remat']}, mesh data={m['data']} fsdp={m['fsdp']} tensor={m['tensor']}")
  if lb is not None:
    lines.append(f"largest per-device batch that fits: {lb['per_device']} (global {lb['global']})"
                 + (f", peak {_gib(lb['peak_bytes'])}" if lb["peak_bytes"] is not None else ""))
  return "\n".join(lines)
