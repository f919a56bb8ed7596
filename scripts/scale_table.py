"""Writes docs/scale.md: for every model of the study, the smallest v4 / v5e / v5p slice that fits a full
fine-tuning step at the papers' batch and length, its mesh and remat, per-device memory, the step time at
50% MFU and the time of one epoch of MNLI and of SQuAD.

    PYTHONPATH=. python scripts/scale_table.py            # rewrites docs/scale.md
    PYTHONPATH=. python scripts/scale_table.py --compile --rows "XLM-R large" --tasks MNLI  # + TPU compiles

The estimate (no compiles, seconds for the whole table): parameters, gradients and optimizer state
per device are exact (the trainer's model, optimizer and sharding rules, FSDP over the whole slice);
activations are an analytic estimate (see `activation_bytes`). `--compile` confirms cells with real
TPU compiles of the train step (scripts/scale_compiled.py); their results are kept in
docs/scale_compiled.json and shown next to the estimate. Adding a row is one line in ROWS.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import types
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from xtjax.cli.plan_cmd import load_plan_config
from xtjax.models.task_model import TaskModel
from xtjax.parallel.rules import logical_axes_of, logical_to_spec, rules_from_config
from xtjax.parallel.topology import CHIPS
from xtjax.perf import flops
from xtjax.tasks import registry as task_registry
from xtjax.train import optim, setup
from xtjax.train.plan import model_config
from xtjax.train.plan_search import MFU, RECOMPUTE
from xtjax.train.state import trained_part

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scale_compiled as compiled

GiB = 1024 ** 3
HEADROOM = 0.9
# (label, preset, form): `encoder` = a task head on the encoder (mT5: its encoder alone), `text_to_text` = the
# whole encoder-decoder trained on target text.
ROWS = [
    ("XLM-R base", "xlmr-base", "encoder"),
    ("XLM-R large", "xlmr-large", "encoder"),
    ("mBERT", "mbert-base", "encoder"),
    *[(f"mT5-{s}", f"mt5-{s}", "encoder") for s in ("small", "base", "large", "xl", "xxl")],
    *[(f"mT5-{s}", f"mt5-{s}", "text_to_text") for s in ("small", "base", "large", "xl", "xxl")],
    *[(f"Llama-3.1-{s.upper()}", f"llama-3.1-{s}", form) for s in ("8b", "70b") for form in ("decoder", "decoder_lora")],
]
# form -> task -> (task name, global batch, input length, target length, source of the setting)
SETTINGS = {
    "encoder": {"MNLI": ("mnli", 32, 128, 0), "SQuAD": ("squad_v1", 32, 384, 0)},  # XLM-R (Conneau et al. 2020)
    # google-research/multilingual-t5 finetune_mt5_tasks.sh + gin/sequence_lengths: XNLI 2^20 tokens of 1024-token
    # inputs and 128-token targets; XQuAD 2^17 tokens, targets 512.
    "text_to_text": {"MNLI": ("mnli_t2t", 1024, 1024, 128), "SQuAD": ("squad_v1_t2t", 128, 1024, 512)},
    # configs/llm/llama31_*: the decoder heads (last-token classifier, span extraction) at the same 32 x 128 / 384
    "decoder": {"MNLI": ("mnli", 32, 128, 0), "SQuAD": ("squad_v1", 32, 384, 0)},
}
SETTINGS["decoder_lora"] = SETTINGS["decoder"]
# LoRA as in configs/lora: rank 16 on every attention and MLP projection of the decoder (heads trained in full)
LORA = ("lora={targets: ['encoder/layers/\\d+/(attention/(q|k|v|o)|mlp/(gate|up|down))/kernel'], rank: 16, "
        "alpha: 32}")
TRAIN_EXAMPLES = {"MNLI": 392_702, "SQuAD": 87_599}  # xtjax/tasks/published_counts.tsv (SQuAD: questions)
# Public slice names by generation, smallest first (v4 / v5p count TensorCores, two per chip; v5e chips).
SLICES = {"v4": [8 * 2 ** i for i in range(10)], "v5e": [1, 4, 8, 16, 32, 64, 128, 256],
          "v5p": [8 * 2 ** i for i in range(11)]}
REMATS = ("none", "full")
TASKS = ("MNLI", "SQuAD")


def _config(preset: str, form: str, task: str, remat: str = "none", accum: int = 1):
  name, batch, length, target = SETTINGS[form][task]
  overrides = [f"tasks=[{{name: {name}}}]", f"batch_size={batch}", f"features.max_length={length}",
               "mesh.data=1", "mesh.fsdp=-1", f"model.config_overrides.remat={remat}",
               f"optim.grad_accum_steps={accum}"]
  if target:
    overrides.append(f"features.max_target_length={target}")
  if preset.startswith("mt5"):  # mT5 was fine-tuned with Adafactor at a constant 1e-3, no weight decay
    overrides += ["optim.optimizer=adafactor", "optim.weight_decay=0.0", "optim.learning_rate=0.001"]
  if form == "decoder_lora":
    overrides.append(LORA)
  return load_plan_config(None, overrides, preset)


def _model(cfg):
  """(encoder config, [(shape, dtype, logical axes)] of params, of optimizer state) from shapes alone."""
  family, enc = model_config(cfg)
  task = task_registry.get(cfg.tasks[0].name)
  heads = setup.head_configs([task])
  _, params = nnx.split(nnx.eval_shape(lambda: TaskModel(family, enc, heads, rngs=nnx.Rngs(0), lora=cfg.lora)))
  trained = trained_part(params, cfg.lora)[0]  # everything, or LoRA's adapters and heads
  tx, _ = optim.build(cfg.optim, trained, 1000, enc.num_layers)
  opt = jax.eval_shape(tx.init, trained)

  def arrays(tree):
    axes = jax.tree.leaves(logical_axes_of(tree), is_leaf=lambda x: isinstance(x, tuple) or x is None)
    return [(tuple(x.shape), x.dtype, a) for x, a in zip(jax.tree.leaves(tree), axes)]

  p, g = arrays(params), arrays(trained)
  # Optimizer leaves shaped like a parameter are sharded like it (train.state.state_sharding); the rest
  # (Adafactor's factored statistics, counters) are replicated.
  by_shape = {shape: a for shape, _, a in p}
  o = [(tuple(x.shape), x.dtype, by_shape.get(tuple(x.shape))) for x in jax.tree.leaves(opt)]
  return enc, task, p, g, o


def _per_device(arrays, devices: int, rules) -> int:
  mesh = types.SimpleNamespace(shape={"data": 1, "fsdp": devices, "tensor": 1})
  total = 0
  for shape, dtype, names in arrays:
    spec = logical_to_spec(names, rules, mesh, shape) if names else ()
    split = [devices if (i < len(spec) and spec[i]) else 1 for i in range(len(shape))]
    total += math.prod(s // k for s, k in zip(shape, split)) * np.dtype(dtype).itemsize
  return total


def activation_bytes(enc, form: str, batch: int, length: int, target: int, remat: str) -> float:
  """Live activations of one train step on one device for `batch` sequences, bf16 (Korthikanti et al. 2022,
  "Reducing Activation Recomputation", eq. 1: s*b*h*(34 + 5*a*s/h) bytes a layer with a 4h MLP; the MLP's
  19h generalised to 3h + 4f, gated 3h + 6f). `full` keeps each layer's input (2 bytes a value) plus one
  layer's activations while it is recomputed; text-to-text adds the f32 logits and their gradient."""
  D = getattr(enc, "hidden_size", None) or enc.d_model
  F = getattr(enc, "intermediate_size", None) or enc.d_ff
  H = enc.num_heads
  gated = getattr(enc, "is_gated", False) or form.startswith("decoder")  # Llama's SwiGLU
  mlp = 3 * D + (6 if gated else 4) * F

  def enc_layer(s):  # bytes per sequence
    return s * (11 * D + 5 * H * s + mlp + 4 * D)

  def dec_layer(t, s):
    return t * (11 * D + 5 * H * t + 11 * D + 5 * H * s + mlp + 6 * D)

  layers = [enc_layer(length)] * enc.num_layers
  inputs = [2 * length * D] * enc.num_layers
  logits = 0
  if form == "text_to_text":
    layers += [dec_layer(target, length)] * enc.num_decoder_layers
    inputs += [2 * target * D] * enc.num_decoder_layers
    logits = 2 * 4 * target * enc.vocab_size
  kept = sum(layers) if remat == "none" else sum(inputs) + max(layers)
  return batch * (kept + logits)


def candidates(gen: str, enc, form, arrays, grads, opt, rules, batch, length, target):
  """Every (slice, remat, accum) of a generation in the order the table tries them (smallest slice, then
  `none` before `full`, then fewer micro-batches), with the analytic per-device memory and whether it fits."""
  chip = CHIPS[gen]
  for cores in SLICES[gen]:
    devices = cores // chip.cores_per_chip
    if batch % devices:
      continue
    state = sum(_per_device(x, devices, rules) for x in (arrays, grads, opt))
    for remat in REMATS:
      accum = 1
      while batch % (devices * accum) == 0:
        act = activation_bytes(enc, form, batch // (devices * accum), length, target, remat)
        yield {"slice": f"{gen}-{cores}", "devices": devices, "remat": remat, "accum": accum, "state": state,
               "total": state + act, "fits": state + act <= HEADROOM * chip.hbm_bytes}
        accum *= 2


def smallest_slice(gen: str, *model_and_shape):
  return next((c for c in candidates(gen, *model_and_shape) if c["fits"]), None)


def row(label, preset, form):
  out = {"label": label, "preset": preset, "form": form, "tasks": {}}
  for task_label in TASKS:
    cfg = _config(preset, form, task_label)
    enc, task, arrays, grads, opt = _model(cfg)
    _, batch, length, target = SETTINGS[form][task_label]
    rules = rules_from_config(cfg.rules)
    train_flops = flops.train_flops(enc, batch, length, task.head_type, task.num_labels, 1, target)
    shape = (enc, form, arrays, grads, opt, rules, batch, length, target)
    cells = {}
    for gen in SLICES:
      fit = smallest_slice(gen, *shape)
      if fit is not None:
        fit["step"] = step_seconds(train_flops, fit)
        fit["epoch"] = math.ceil(TRAIN_EXAMPLES[task_label] / batch) * fit["step"]
      cells[gen] = fit
    out["tasks"][task_label] = {"batch": batch, "length": length, "target": target, "cells": cells,
                                "params": sum(math.prod(s) for s, _, _ in arrays),
                                "trained": sum(math.prod(s) for s, _, _ in grads),
                                "inputs": compiled.inputs_hash(cfg, enc), "train_flops": train_flops,
                                "candidates": lambda gen, shape=shape: candidates(gen, *shape),
                                "program": _program_of(preset, form, task_label)}
  return out


def _program_of(preset: str, form: str, task_label: str):
  """choice -> the hash of the train step that choice compiles, lowered in this process once per choice."""
  seen = {}

  def program(choice: dict) -> str:
    key = compiled.choice_text(choice)
    if key not in seen:
      _libtpu_env()
      seen[key] = compiled.lower_train_step(_config(preset, form, task_label, choice["remat"], choice["accum"]),
                                            choice["slice"])
    return seen[key]

  return program


def _libtpu_env() -> None:
  os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")  # keep libtpu from probing for hosts
  os.environ.setdefault("TPU_ACCELERATOR_TYPE", "v4-16")
  # Compiles for described slices touch no chip: another compile (a test, `xtjax plan`) may hold libtpu's lock file.
  os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")


def step_seconds(train_flops: float, choice: dict) -> float:
  """At `MFU` of the slice's peak, counting what `full` remat recomputes."""
  gen = choice["slice"].split("-")[0]
  return train_flops * (1 + RECOMPUTE[choice["remat"]]) / (choice["devices"] * CHIPS[gen].peak_bf16 * MFU)


def _duration(seconds: float) -> str:
  if seconds < 120:
    return f"{seconds:.0f} s"
  if seconds < 7200:
    return f"{seconds / 60:.0f} min"
  return f"{seconds / 3600:.1f} h"


HEADS = {"encoder": "encoder + task head", "text_to_text": "text-to-text", "decoder": "decoder + task head",
         "decoder_lora": "decoder + task head, LoRA r16"}


def _gib(n) -> str:
  return f"{n / GiB:.1f} GiB" if n is not None else "?"


def compiled_cells(rows, cache: dict, gens=SLICES):
  """(row, task label, gen, key, analytic choice, entry or None, status) for every cell of the table."""
  for r in rows:
    for task_label in TASKS:
      t = r["tasks"][task_label]
      for gen in gens:
        key = compiled.cell_key(r["label"], HEADS[r["form"]], task_label, gen)
        entry, status = compiled.lookup(cache, key, t["inputs"], t["cells"][gen], t["program"])
        yield r, task_label, gen, key, t["cells"][gen], entry, status


def _verdict(entry: dict) -> str:
  """What the compiles found, in the order they ran: `v4-8 (full, 64): 40.1 GiB, does not fit; v4-16 ...`."""
  parts = []
  for t in entry["tries"]:
    verdict = {True: "fits", False: "does not fit", None: "compile crashed"}[t["fits"]]
    if t["peak_bytes"] is not None:
      verdict = f"{_gib(t['peak_bytes'])}, {verdict}"
    elif t.get("temp_bytes") is not None:
      verdict = f"temporaries alone {_gib(t['temp_bytes'])}, {verdict}"
    parts.append(f"{compiled.choice_text(t)}: {verdict}")
  if compiled.fitting_try(entry) is None:
    parts.append(f"no fit within {len(entry['tries'])} compiles (`--resume` tries more)")
  return "; ".join(parts)


def compiled_table(rows, cache: dict, task_label: str) -> list[str]:
  lines = [("| model | head | estimate: slice (remat, accum) | estimate mem/dev | compiled: tried in order | "
           "compiled peak/dev | temporaries/dev | compiled / estimate | FLOPs/dev compiled (XLA) / analytic | "
           "compile CPU | source |"), "|---|---|---|---:|---|---:|---:|---:|---:|---:|---|"]
  for r, task, gen, _, analytic, entry, status in compiled_cells(rows, cache):
    if task != task_label or (entry is None and status == "estimate only" and gen not in COMPILED_GENS):
      continue
    est = [compiled.choice_text(analytic), _gib(analytic["total"])] if analytic else ["does not fit", ""]
    fit = compiled.fitting_try(entry) if entry else None
    if fit is None:
      shown = [_verdict(entry) if entry else "", "", "", "", "", ""]
    else:
      analytic_flops = r["tasks"][task]["train_flops"] * (1 + RECOMPUTE[fit["remat"]]) / fit["devices"]
      shown = [_verdict(entry), _gib(fit["peak_bytes"]), _gib(fit["temp_bytes"]),
               f"{fit['peak_bytes'] / fit['analytic_total']:.2f}",
               f"{fit['flops']:.2e} / {analytic_flops:.2e}",
               f"{sum(t.get('compile_cpu_seconds') or 0 for t in entry['tries']):.0f} s"]
    lines.append(f"| {r['label']} | {HEADS[r['form']]} | " + " | ".join(est + shown + [status]) + " |")
  return lines


# A hand-measured section kept at the end of docs/scale.md (`xtjax plan --remat-table`, issue 23).
REMAT_SECTION = '''## Remat policies: Llama-3.1-8B MNLI on v4-16

`xtjax plan --preset llama-3.1-8b --topology v4-16 --remat-table --remats none,full,minimal_with_context,minimal`
side by side with MaxText 0.2.5's AOT compile of the same step (`python -m maxtext.trainers.pre_train.train_compile
maxtext/configs/base.yml model_name=llama3.1-8b compile_topology=v4-16 compile_topology_num_slices=1
per_device_batch_size=4 max_target_length=128 ici_fsdp_parallelism=-1 remat_policy=...`, its defaults: f32
weights, bf16 activations, AdamW, scanned layers, `attention: autoselected`). 8 chips, FSDP 8,
global batch 32 x 128; measured 2026-12-07 (not rewritten by this script). The xtjax rows on libtpu 0.0.52 ran
the same code in MaxText's venv (`pip install maxtext[tpu]==0.2.5`: jax 0.12.1, flax 0.12.12, libtpu 0.0.52);
the 0.0.42.1 rows are the project's lock (jax 0.10.2). Per device; "state" is peak - temporaries (arguments
not donated back); peak = arguments + outputs + temporaries - donated. XLA's FLOPs count the scanned layer
once (one layer fwd + bwd plus what lies outside the scan); "of full" is (FLOPs - none's) / (full's - none's).
MaxText trains the language model: its FLOPs include the LM head over all 512 tokens a device (6 x 512 x 4096
x 128256 = 1.61e+12) and its state the untied head with its Adam moments (0.73 GiB a device); xtjax's MNLI
classifier holds neither (a head that never reads the LM head does not carry it).

| run | jax / libtpu | remat | state | temporaries | peak | XLA FLOPs | of full's recompute |
|---|---|---|---:|---:|---:|---:|---:|
| xtjax | 0.12.1 / 0.0.52 | none | 10.49 GiB | 10.26 GiB | 20.75 GiB | 7.01e+11 | 0% |
| xtjax | 0.12.1 / 0.0.52 | full | 10.49 GiB | 5.59 GiB | 16.07 GiB | 8.67e+11 | 100% |
| xtjax | 0.12.1 / 0.0.52 | minimal_with_context | 10.49 GiB | 6.66 GiB | 17.15 GiB | 7.03e+11 | 1% |
| xtjax | 0.12.1 / 0.0.52 | minimal | 10.49 GiB | 6.54 GiB | 17.03 GiB | 7.03e+11 | 1% |
| MaxText 0.2.5 | 0.12.1 / 0.0.52 | full | 11.22 GiB | 5.72 GiB | 16.94 GiB | 2.47e+12 (8.60e+11 without the LM head) | |
| MaxText 0.2.5 | 0.12.1 / 0.0.52 | minimal_with_context | 11.22 GiB | 6.73 GiB | 17.95 GiB | 2.31e+12 (6.97e+11 without the LM head) | |
| xtjax | 0.10.2 / 0.0.42.1 | none | 10.49 GiB | 12.24 GiB | 22.72 GiB | 7.01e+11 | 0% |
| xtjax | 0.10.2 / 0.0.42.1 | full | 10.49 GiB | 6.26 GiB | 16.75 GiB | 8.67e+11 | 100% |
| xtjax | 0.10.2 / 0.0.42.1 | minimal_with_context | 10.49 GiB | 8.45 GiB | 18.94 GiB | 7.03e+11 | 1% |
| xtjax | 0.10.2 / 0.0.42.1 | minimal | 10.49 GiB | 8.20 GiB | 18.69 GiB | 7.03e+11 | 1% |

On the same compiler, xtjax's `minimal_with_context` keeps the FLOPs of `none` (no matmul recomputed) at
6.66 GiB of temporaries against MaxText's 6.73, and peaks at 17.15 GiB against 17.95 (0.73 GiB of it the LM
head MaxText carries); `full` peaks at 16.07 GiB against 16.94. libtpu 0.0.52 needs 1.3-2.0 GiB fewer
temporaries than the locked 0.0.42.1 for the same xtjax program. Before the layers named their activations
(`xtjax/models/remat.py`: the weight products go through a custom VJP that XLA's dot policies cannot see),
`dots_saveable` on 0.0.42.1 kept 7.01 GiB of temporaries at 8.7e+11 FLOPs: `full`'s FLOPs (issue 23).
'''


# A hand-measured section kept at the end of docs/scale.md (`xtjax plan --buffers`, issue 23).
XXL_SECTION = '''## mT5-XXL text-to-text at mT5's recipe: compiled

MNLI as mT5 fine-tuned XNLI (`finetune_mt5_tasks.sh`): 1024 rows x 1024 input tokens -> 128 target tokens a
step (2^20 tokens), Adafactor (factored, no momentum), f32 weights, bf16 compute, FSDP over the slice,
`remat: full`, 64 micro-batches of 16 rows. `xtjax plan --preset mt5-xxl --topology T --no-eval --buffers 25
"tasks=[{name: mnli_t2t}]" batch_size=1024 features.max_length=1024 features.max_target_length=128
mesh.data=1 mesh.fsdp=-1 model.config_overrides.remat=full optim.grad_accum_steps=64 optim.optimizer=adafactor
optim.weight_decay=0.0 optim.learning_rate=0.001`; measured 2026-12-07 on libtpu 0.0.42.1 (not rewritten by this
script). Per device:

| slice | mesh | LM head | arguments | temporaries | peak | HBM | verdict | compile (wall / CPU) |
|---|---|---|---:|---:|---:|---:|---|---:|
| v4-32 (16 chips) | fsdp 16 | gathered (FSDP's default) | 3.03 GiB | 17.69 GiB | 20.72 GiB | 32 GiB | fits | 431 s / 770 s |
| v4-32 (16 chips) | fsdp 16 | vocabulary-parallel | 3.03 GiB | 13.03 GiB | **16.06 GiB** | 32 GiB | **fits** | 509 s / 788 s |
| v5p-8 (4 chips) | fsdp 4 | vocabulary-parallel | 12.06 GiB | 40.98 GiB | **53.04 GiB** | 95 GiB | **fits** | 501 s / 669 s |
| v4-16 (8 chips) | fsdp 8 | either | | | | 32 GiB | libtpu 0.0.42.1 crashes (SIGSEGV, stack overflow in its convolution emitter), the same program before and after this change | |
| v4-16 (8 chips), libtpu 0.0.52 | fsdp 8 | vocabulary-parallel | 6.04 GiB | 14.98 GiB | **21.02 GiB** | 32 GiB | **fits** | 500 s / 765 s |

The v4-16 row ran the same xtjax code with jax 0.12.1 / libtpu 0.0.52 (MaxText 0.2.5's venv, as in the remat
section). Smallest slices with a compiled fit: **v4-16** (on libtpu 0.0.52; the locked 0.0.42.1 crashes
compiling it, so on the lock **v4-32**) and **v5p-8**, the smallest v5p slice. Step time at 50% MFU: 18.5 s on v4-32 (2.55e15 training FLOPs a step).
The estimate above picked v4-8 (full, 64); earlier compiles of v4-8 and v4-16 were refused with 37-41 GiB of
temporaries, and v4-32 with `none` with 31.5 GiB.

What held the temporaries (`--buffers`, the compiler's buffer assignment, before the change, v4-32): the LM head
[4096, 250112] all-gathered whole in bf16 (1.91 GiB) and its whole f32 gradient before the reduce-scatter (3.82 GiB)
plus a bf16 copy of it (1.91 GiB): 7.6 of 13.5 GiB of the block. The T5 head is now vocabulary-parallel
under FSDP (`xtjax.parallel.rules.vocab_parallel`): the hidden states of a micro-batch (a few MiB) are gathered
instead of the weight, each device computes its 1/16 of the vocabulary for every token, and the loss's
reductions over the vocabulary become all-reduces of [B, T] values; no [4096, 250112] buffer is left
(largest head buffer [4096, 15632] f32, 0.24 GiB). Same logits, loss and gradients as one device
(tests/train/test_t2t_loss.py). What is left: the per-layer gradients of the stacked weights and their
accumulator (f32 [23, 256, 10240] slots, 0.22 GiB each), T5's relative position bias and its gradient
(f32 [1024, 1024, 64], 0.25-0.5 GiB: the einsum attention materialises it; the Pallas kernels refuse T5's bias)
and the f32 attention scores of the recomputed layer ([1, 64, 1024, 1024], 0.25 GiB each).
'''


# A hand-measured section kept at the end of docs/scale.md (Llama-3.1-70B compiles, issue 23).
LLAMA70_SECTION = '''## Llama-3.1-70B: compiled, stacked against unrolled

MNLI classifier (last-token head; the untied LM head, 1,051M parameters, is left out), 32 x 128, bf16 compute,
AdamW, FSDP over the slice: `xtjax plan --preset llama-3.1-70b --topology T --no-eval [overrides]`, LoRA rank 16 on
every attention and MLP projection as in the tables above; measured 2026-12-07 on libtpu 0.0.42.1 (not rewritten
by this script). Compile CPU time and host memory are the whole `xtjax plan` process (`/usr/bin/time -v`: user
seconds, maximum resident set), on the 2-core machine. Per device:

| run | slice | layers | remat | arguments | temporaries | peak | verdict | compile wall / CPU | host memory |
|---|---|---|---|---:|---:|---:|---|---:|---:|
| full fine-tuning | v5p-32 | stacked (scan) | none | 48.56 GiB | 47.79 GiB | 96.35 GiB | does not fit (limit 85.5 of 95) | 43 s / 71 s | 1.30 GB |
| full fine-tuning | v5p-32 | stacked (scan) | full | 48.56 GiB | 29.61 GiB | **78.17 GiB** | **fits** | 52 s / 89 s | 1.40 GB |
| full fine-tuning | v5p-32 | unrolled | full | 48.56 GiB | 177.47 GiB (refused) | | does not fit | 238 s / 234 s | 3.43 GB |
| LoRA r16, f32 base weights | v4-32 | stacked | none | | 46.03 GiB (refused) | | does not fit | 11 s / 10 s | 0.51 GB |
| LoRA r16, f32 base weights | v4-32 | stacked | full | | 34.52 GiB (refused) | | does not fit | 14 s / 13 s | 0.51 GB |
| LoRA r16, bf16 base weights (`model.config_overrides.param_dtype=bfloat16`) | v4-32 | stacked | full | 8.87 GiB | 9.17 GiB | **18.54 GiB** | **fits** | 40 s / 63 s | 1.64 GB |
| LoRA r16, f32 base weights, after the scan fix below | v4-32 | stacked | full | 17.73 GiB | 11.00 GiB | **28.73 GiB** | **fits** (limit 28.8 of 32) | 43 s / 54 s | 1.44 GB |
| full fine-tuning, after the scan fix below | v5p-32 | stacked (scan) | full | 48.56 GiB | 29.38 GiB | **77.94 GiB** | **fits** | 63 s / 85 s | 1.37 GB |

Stacked layers compile 2.6x faster with 2.5x less host memory than the same 80 layers unrolled, and the unrolled
program does not fit: its buffers (`--buffers`) hold the whole f32 gradients of many layers' MLP weights
([8192, 28672], 0.88 GiB each) at once before their reduce-scatters, where the scan reduce-scatters one layer's per
step. LoRA with f32 base weights was refused on v4-32 with `full` remat too: the train step kept every layer's
(frozen) weights, cast to bf16, for the backward pass (bf16 [80, 512, 28672] slots, 2.19 GiB each). They were the
outputs of the per-layer sharding constraint on the weights, applied outside the rematerialised layer, so the scan
stacked them as residuals under every policy. The constraint now runs inside it (`xtjax/models/scan.py`; `none`'s
programs are unchanged, hash for hash): LoRA fits with f32 base weights, and the Llama-3.1-8B rows of the remat
section on libtpu 0.0.42.1 drop to full 16.70, minimal_with_context 18.74, minimal 18.50 GiB peak (0.05-0.2 GiB:
trained weights' gradients already needed them).
'''


def markdown(rows, cache: dict) -> str:
  entries = [e for *_, e, _ in compiled_cells(rows, cache) if e is not None]
  lines = [
      "# Does it fit? Smallest TPU slices for full fine-tuning",
      "",
      "Generated by `PYTHONPATH=. python scripts/scale_table.py` (do not edit by hand; `--compile` confirms",
      "cells with real TPU compiles, see below). The main tables are the **analytic estimate**: no program is",
      "compiled for them, because XLA compiles of 0.3-13B-parameter train steps take minutes each on",
      "the 2-core machine this was generated on. Per device, parameters (f32), gradients and optimizer state",
      "(AdamW for XLM-R / mBERT and the Llama decoders, with LoRA only for its adapters and the heads;",
      "Adafactor, as mT5 was fine-tuned, for mT5) are exact, from the trainer's own",
      "model, optimizer and sharding rules with FSDP over the whole slice (`mesh.data=1 mesh.fsdp=-1`, bf16",
      "compute). Activations are an analytic estimate (Korthikanti et al. 2022, eq. 1, generalised to T5's",
      "gated MLP; `remat: full` keeps each layer's input and one layer at a time). A slice fits when their sum",
      f"stays under {int(HEADROOM * 100)}% of one chip's HBM; the remat policy is `none` if that fits, else `full`;",
      "gradient accumulation (accum) is raised in powers of two when the batch does not fit at once.",
      "",
      f"Step time: the analytic training FLOPs (`xtjax.perf.flops`; x4/3 with `remat: full`) at {int(MFU * 100)}%",
      "MFU of the slice's peak bf16 FLOP/s; an epoch is ceil(train examples / batch) steps (MNLI 392,702",
      "pairs, SQuAD v1.1 87,599 questions; SQuAD's 384-token windows add a few percent more features).",
      "Settings: encoder heads at XLM-R's fine-tuning batch and length (Conneau et al. 2020: 32 x 128 for",
      "classification, 32 x 384 for QA); mT5 text-to-text at the mT5 repository's fine-tuning settings",
      "(`finetune_mt5_tasks.sh`: XNLI 1,048,576 tokens a batch = 1024 x 1024 inputs, 128-token targets; XQuAD",
      "131,072 tokens = 128 x 1024, 512-token targets); Llama 3.1 decoders with the task heads of",
      "`configs/llm/` at 32 x 128 / 32 x 384, fully fine-tuned or with LoRA rank 16 on every attention and MLP",
      "projection (the step time counts LoRA's backward as a full one, so it is an upper bound).",
      "",
      "## Compiled confirmation",
      "",
      "`python scripts/scale_table.py --compile [--rows LABEL ...] [--gens v4 v5p] [--tasks MNLI]` compiles the",
      "real train step of a cell (`xtjax.train.plan.plan`, what `xtjax plan` runs: the trainer's model, optimizer,",
      "shardings and micro-batching) with libtpu for the described slice, at the estimate's remat and accum.",
      "When XLA's per-device peak (arguments + temporaries + outputs not aliased to donated inputs) is over",
      f"{int(HEADROOM * 100)}% of HBM, or libtpu refuses the program as larger than HBM, it compiles the next",
      "candidate the estimate also fits (more accum, then `full` remat, then the next slice; a slice is left",
      "when the compiled peak minus the estimated activations alone overflows it), up to",
      f"{compiled.MAX_TRIES} compiles a cell. Results are kept in `docs/scale_compiled.json`, keyed by cell with the",
      "hash of the resolved train and model config and the estimate's choice they were compiled for, and the",
      "hash of the program compiled (the train step's lowered StableHLO). Each time the table is written, the",
      "train step of every compiled cell is lowered again (seconds, no compile): a cell whose inputs changed, or",
      "whose step lowers to another program today, is shown as stale (estimate only) until it is compiled again;",
      "a change to code the step does not run keeps the compiles.",
      "XLA counts a loop body once whatever its trip count, so with stacked layers (`lax.scan`, on from 12",
      "layers) and micro-batches (a scan too) its FLOPs are those of one layer of one micro-batch plus what lies",
      "outside the loops; they are shown for completeness, not as a check of the analytic count.",
      "",
      "Measured error of the memory estimate: " + compiled.measured_error(entries) + " The estimate counts",
      "the state and the activations only; XLA's temporaries also hold what the program materialises around",
      "them (e.g. gathered weights, gradient buffers, collectives' buffers), so where a cell has been compiled",
      "the compiled verdict, not the estimate, says whether it fits.",
      "",
  ]
  for task_label in TASKS:
    lines += [f"### {task_label}: estimate against compile", "", *compiled_table(rows, cache, task_label), ""]
  for task_label in TASKS:
    lines += [f"## {task_label} (estimate)", "",
              "| model | head | params | batch x len (target) | " + " | ".join(
                  f"smallest {g} (remat, accum) | {g} mem/dev | {g} step | {g} epoch" for g in SLICES) + " |",
              "|---|---|---:|---|" + "---|---:|---:|---:|" * len(SLICES)]
    for r in rows:
      t = r["tasks"][task_label]
      shape = f"{t['batch']} x {t['length']}" + (f" ({t['target']})" if t["target"] else "")
      cells = []
      for g in SLICES:
        c = t["cells"][g]
        if c is None:
          cells += [f"does not fit on <= {t['batch']} chips (FSDP puts >= 1 example on each)", "", "", ""]
          continue
        cells += [compiled.choice_text(c), _gib(c["total"]), f"{c['step'] * 1e3:.0f} ms", _duration(c["epoch"])]
      head = HEADS[r["form"]]
      trained = f" ({t['trained'] / 1e6:,.1f}M trained)" if t["trained"] != t["params"] else ""
      lines.append(f"| {r['label']} | {head} | {t['params'] / 1e6:,.0f}M{trained} | {shape} | " + " | ".join(cells)
                   + " |")
    lines.append("")
  return "\n".join(lines + [REMAT_SECTION.rstrip(), "", XXL_SECTION.rstrip(), "", LLAMA70_SECTION.rstrip()])


def _selected(spec: tuple, wanted) -> bool:
  """`--rows mT5-xxl` picks both mT5-xxl rows; `--rows mT5-xxl:text_to_text` one of them."""
  label, _, form = spec
  return not wanted or any(w in (label, f"{label}:{form}") for w in wanted)


def compile_rows(rows, cache: dict, cache_path, wanted=(), gens=("v4",), tasks=TASKS, compile_fn=None,
                 log=print, resume: bool = False, max_tries: int = compiled.MAX_TRIES) -> None:
  """Compiles every selected cell that has no fresh entry, saving the cache after each; with `resume`, a
  fresh entry that found no fit goes on with the candidates after its last try."""
  for r in rows:
    if not _selected((r["label"], r["preset"], r["form"]), wanted):
      continue
    for task_label in tasks:
      t = r["tasks"][task_label]
      for gen in gens:
        key = compiled.cell_key(r["label"], HEADS[r["form"]], task_label, gen)
        analytic = t["cells"][gen]
        fresh = compiled.lookup(cache, key, t["inputs"], analytic, t["program"])[0] if analytic is not None else None
        if analytic is None or (fresh is not None and not (resume and compiled.fitting_try(fresh) is None)):
          continue
        fn = compile_fn or (lambda c, r=r, task_label=task_label: compiled.isolated(
            compiled.compile_train_step, _config(r["preset"], r["form"], task_label, c["remat"], c["accum"]),
            c["slice"]))

        def logged(c, fn=fn, key=key, program_of=t["program"]):
          log(f"{key}: compiling {compiled.choice_text(c)} (estimate {_gib(c['total'])})", flush=True)
          out, program = fn(c), program_of(c)  # lowered here too: a crashed compile still names its program
          if out.get("program", program) != program:
            raise RuntimeError(f"{key}: {compiled.choice_text(c)} lowered to program {program} here but compiled "
                               f"{out['program']} in the compiler's process: lowering is not deterministic")
          out = {**out, "program": program}
          log(f"{key}: {compiled.choice_text(c)} -> {_gib(out['peak_bytes'])}, fits={out['fits']}, "
              f"{out.get('compile_cpu_seconds')} CPU s {out.get('error', '')}", flush=True)
          return out

        tries = compiled.confirm(t["candidates"](gen), analytic, logged, CHIPS[gen].hbm_bytes, HEADROOM,
                                 max_tries, done=fresh["tries"] if fresh else ())
        cache[key] = compiled.entry(t["inputs"], analytic, tries)
        compiled.put(cache_path, key, cache[key])


COMPILED_GENS = ("v4",)  # generations whose cells the compiled tables list even before they are compiled


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--out", default="docs/scale.md")
  p.add_argument("--cache", default="docs/scale_compiled.json")
  p.add_argument("--compile", action="store_true", help="compile the train step of the selected cells with libtpu")
  p.add_argument("--rows", nargs="*", default=(), help="row labels (LABEL or LABEL:FORM) to compile; default all")
  p.add_argument("--gens", nargs="*", default=["v4"], choices=list(SLICES), help="generations to compile")
  p.add_argument("--tasks", nargs="*", default=list(TASKS), choices=list(TASKS), help="tasks to compile")
  p.add_argument("--resume", action="store_true",
                 help="cells whose compiles found no fit go on with the next candidates")
  p.add_argument("--max-tries", type=int, default=compiled.MAX_TRIES, help="compiles a cell (or a resume) may take")
  args = p.parse_args(argv)
  cache = compiled.load(args.cache)
  rows = [row(*r) for r in ROWS]
  if args.compile:
    _libtpu_env()
    compile_rows(rows, cache, args.cache, args.rows, args.gens, args.tasks, resume=args.resume,
                 max_tries=args.max_tries)
  write_doc(rows, cache, args.out)
  return 0


def write_doc(rows, cache: dict, out) -> None:
  out = Path(out)
  out.parent.mkdir(parents=True, exist_ok=True)
  tmp = out.with_suffix(out.suffix + ".tmp")
  tmp.write_text(markdown(rows, cache) + "\n")
  os.replace(tmp, out)
  print(f"wrote {out} ({len(rows)} rows)")


if __name__ == "__main__":
  sys.exit(main())
