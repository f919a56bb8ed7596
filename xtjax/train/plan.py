"""What a training run costs on a slice, without running it: `xtjax plan`.

Builds the trainer's own program (`xtjax.train.program`: model and heads, optimizer, shardings, the train
step with its micro-batching) from shapes only, with the shared eval function, and compiles the train and
eval steps ahead of time for a described slice (`xtjax.parallel.topology`).
"""

from __future__ import annotations

import dataclasses
import types

import jax
import jax.numpy as jnp

from xtjax.data.packing import SEGMENT_KEYS
from xtjax.errors import ConfigError
from xtjax.evaluation.programs import head_fn
from xtjax.models import init as model_init
from xtjax.models.heads import head_kind
from xtjax.parallel import plan as aot
from xtjax.parallel import topology
from xtjax.parallel.batching import batch_sharding
from xtjax.parallel.mesh import make_mesh
from xtjax.parallel.rules import rules_from_config, traced_with_activation_sharding
from xtjax.runs import start
from xtjax.runs.schema import TrainConfig
from xtjax.tasks import registry as task_registry
from xtjax.train import setup
from xtjax.train.optim import tree_paths
from xtjax.train.program import run_program


def model_config(cfg: TrainConfig):
  """(family, config) of the run's encoder in the trainer's start order, read from configs alone (no weights):
  what the trainer builds, so without the parts no head of the run uses (`setup.run_encoder_config`)."""
  family, enc_cfg, _ = start.encoder_config(start.encoder_source(cfg))
  return family, setup.run_encoder_config(enc_cfg, cfg)


def left_out(cfg: TrainConfig) -> dict | None:
  """What the run's model leaves out of its source because no head uses it (`ModelConfig.for_heads`): the
  top-level parameter paths and their count; None when nothing is."""
  family, enc_cfg, _ = start.encoder_config(start.encoder_source(cfg))
  whole = start.configure_encoder(enc_cfg, cfg.model)
  built = whole.for_heads(setup.lm_logits_used(cfg))
  if built == whole:
    return None
  def sizes(c) -> dict[str, int]:
    state = model_init.abstract(family, c)[1]
    return dict(zip(jax.tree.leaves(tree_paths(state)), (x.size for x in jax.tree.leaves(state))))

  kept, full = sizes(built), sizes(whole)
  gone = {p: n for p, n in full.items() if p not in kept}
  parts = sorted({"encoder/" + p.split("/")[0] for p in gone})  # TaskModel paths of the parts left out
  return {"paths": parts, "params": int(sum(gone.values()))}


def abstract_batch(head_type: str, batch: int, length: int, with_types: bool, choices: int,
                   target_length: int = 32, packed: bool = False) -> dict:
  """The arrays a task's featuriser produces for one batch, as shapes (see `tasks.base.Features`);
  `packed`: text-to-text rows with segment ids and positions (`xtjax.data.packing`)."""
  rows = (batch, choices, length) if head_type == "multiple_choice" else (batch, length)
  i32 = jnp.int32
  out = {"input_ids": jax.ShapeDtypeStruct(rows, i32), "attention_mask": jax.ShapeDtypeStruct(rows, i32),
         "example_mask": jax.ShapeDtypeStruct((batch,), i32)}
  if with_types:
    out["token_type_ids"] = jax.ShapeDtypeStruct(rows, i32)
  if head_type == "span":
    out["start_positions"] = jax.ShapeDtypeStruct((batch,), i32)
    out["end_positions"] = jax.ShapeDtypeStruct((batch,), i32)
  elif head_type in ("tagging", "mlm"):
    out["labels"] = jax.ShapeDtypeStruct((batch, length), i32)
  elif head_type == "text_to_text":
    out["labels"] = jax.ShapeDtypeStruct((batch, target_length), i32)
    if packed:
      for key in SEGMENT_KEYS:
        out[key] = jax.ShapeDtypeStruct((batch, length if key.startswith("inputs") else target_length), i32)
  else:
    out["labels"] = jax.ShapeDtypeStruct((batch,), i32)
  return out


def _with_shardings(batch: dict, mesh, rules) -> tuple[dict, dict]:
  shardings = {k: batch_sharding(mesh, rules, v.shape) for k, v in batch.items()}
  return shardings, {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=shardings[k]) for k, v in batch.items()}


def _train_program(cfg: TrainConfig, slice_: topology.Slice, choices: int) -> types.SimpleNamespace:
  """What `xtjax train` would run for `cfg` on `slice_` (`train.program`, as the trainer builds it), abstract:
  the program, the first training task's batch and its jitted train step (not yet lowered)."""
  family, enc_cfg = model_config(cfg)
  devs = topology.devices(slice_)
  mesh = make_mesh(dataclasses.replace(cfg.mesh, dcn_data=slice_.num_slices), devices=devs)
  rules = rules_from_config(cfg.rules)
  tasks = [task_registry.get(t.name) for t in cfg.tasks]
  train_tasks = [t for t in tasks if t.head_type != "retrieval"]
  if not train_tasks:
    raise ConfigError(f"tasks {[t.name for t in tasks]}: no task with a head to train")
  task = train_tasks[0]
  # The trainer's schedule spans the run's steps (from the data when `steps` is unset): its constants are the step's.
  prog = run_program(cfg, family, enc_cfg, setup.head_configs(train_tasks), mesh, rules, cfg.steps or 1000)
  with_types = enc_cfg.token_types
  batch_sh, batch = _with_shardings(abstract_batch(task.head_type, cfg.batch_size, cfg.features.max_length,
                                                   with_types, choices, cfg.features.max_target_length,
                                                   cfg.features.pack), mesh, rules)
  return types.SimpleNamespace(program=prog, devices=devs, task=task, batch=batch, with_types=with_types,
                               step=prog.train_step(task.name, batch_sh))


def train_program_hash(cfg: TrainConfig, slice_: topology.Slice, choices: int = 4) -> str:
  """`aot.program_hash` of the train step `plan` compiles, lowered only (seconds, not XLA's minutes): a
  compile made for the same hash is a compile of this program."""
  p = _train_program(cfg, slice_, choices)
  return aot.program_hash(p.step.trace(p.program.abstract_state, p.batch).lower())


def _overflow_dict(overflow: aot.Overflow | None) -> dict | None:
  """The refusal's figures (its largest temporaries only when `plan --buffers` asked for them)."""
  if overflow is None:
    return None
  out = dataclasses.asdict(overflow)
  if not out["largest_temporaries"]:
    del out["largest_temporaries"]
  return out


def plan(cfg: TrainConfig, slice_: topology.Slice, choices: int = 4, compile_eval: bool = True,
         compile_train: bool = True, buffers: int = 0) -> dict:
  """Per-device memory, compiled FLOPs and compile time of the run's first training task.

  A program the compiler refuses as larger than HBM gives `fits: False` and `overflow` (`aot.Overflow`: what
  it needs against the HBM it has); the programs compiled before it stay listed.

  `compile_train=False` compiles nothing: the per-device parameters, optimizer state and gradients
  alone, a lower bound that already rules out slices too small for the model. `buffers` > 0: the train step's
  largest temporaries as well (`programs[0]["largest_temporaries"]`, from the compiler's buffer assignment)."""
  p = _train_program(cfg, slice_, choices)
  prog, task, length = p.program, p.task, cfg.features.max_length
  enc_cfg, mesh, rules = prog.model_config, prog.mesh, prog.rules
  abs_params, param_sh, trained, trained_sh, abs_state, state_sh = (
      prog.abstract_params, prog.param_sh, prog.trained, prog.trained_sh, prog.abstract_state, prog.state_sh)
  programs, overflow = [], None
  try:  # a program the compiler refuses as larger than HBM is an answer ("does not fit"), not a crash
    if compile_train:
      programs.append(aot.measure("train_step", p.step, abs_state, p.batch, buffers=buffers))
    if compile_eval and compile_train and not head_kind(task.head_type).seq2seq:  # text-to-text evaluates by generation
      eval_sh, eval_batch = _with_shardings(
          abstract_batch(task.head_type, cfg.eval_batch_size, length, p.with_types, choices), mesh, rules)
      eval_step = jax.jit(traced_with_activation_sharding(head_fn(prog.graphdef, task.name), mesh, rules),  # the
                          in_shardings=(param_sh, eval_sh))  # trainer's eval function, as `BucketedPrograms` compiles it
      programs.append(aot.measure("eval_step", eval_step, abs_params, eval_batch))
  except aot.DoesNotFit as e:
    overflow = e.overflow

  paths = jax.tree.leaves(tree_paths(abs_params))
  params_b = aot.sharded_bytes(abs_params, param_sh)
  opt_b = aot.sharded_bytes(abs_state.opt_state, state_sh.opt_state)
  grads_b = aot.sharded_bytes(trained, trained_sh)  # LoRA: the adapters' and heads' gradients only
  hbm = slice_.chip.hbm_bytes if slice_.chip is not None else None
  state_b = params_b + grads_b + opt_b
  if overflow is not None:
    fits = False
  elif programs:
    fits = None if hbm is None else all(p.peak_bytes <= aot.HEADROOM * hbm for p in programs)
  else:  # without activations only a "no" is certain
    fits = None if hbm is None or state_b <= aot.HEADROOM * hbm else False
  train_temps, total = (programs[0].temp_bytes, programs[0].peak_bytes) if programs else (None, state_b)
  if overflow is not None and overflow.name == "train_step":  # what the refusal names: the peak, or temporaries
    train_temps = overflow.needed_bytes if overflow.needed == "temporaries" else None  # beside the arguments
    total = overflow.needed_bytes if overflow.needed == "peak" else params_b + opt_b + overflow.needed_bytes
  return {
      "topology": slice_.name, "devices": len(p.devices), "num_slices": slice_.num_slices,
      "mesh": dict(mesh.shape), "task": task.name, "head_type": task.head_type,
      "num_labels": task.num_labels, "choices": choices if task.head_type == "multiple_choice" else 1,
      "batch_size": cfg.batch_size, "grad_accum_steps": cfg.optim.grad_accum_steps, "max_length": length,
      "max_target_length": cfg.features.max_target_length if head_kind(task.head_type).seq2seq else 0,
      "dtype": enc_cfg.dtype, "param_dtype": enc_cfg.param_dtype, "model": prog.family.name, "encoder_config": enc_cfg,
      "num_params": int(sum(x.size for x in jax.tree.leaves(abs_params))),
      "trained_params": int(sum(x.size for x in jax.tree.leaves(trained))),
      "left_out": left_out(cfg),  # of the source model: parts no head of the run uses, never built
      "per_device": {"params": params_b, "optimizer_state": opt_b, "gradients": grads_b,
                     "activations_and_temporaries": train_temps,
                     "total": total},
      "hbm_bytes": hbm, "headroom": aot.HEADROOM,
      "checkpoint_bytes": int(sum(x.size * x.dtype.itemsize  # what a save writes, all hosts together
                                  for x in jax.tree.leaves((abs_state.params, abs_state.opt_state)))),
      "hosts": slice_.hosts,
      "fits": fits, "overflow": _overflow_dict(overflow),
      "peak_bf16": slice_.chip.peak_bf16 if slice_.chip is not None else None,
      "chip_source": slice_.chip.source if slice_.chip is not None else None,
      "programs": [dataclasses.asdict(p) | {"peak_bytes": p.peak_bytes} for p in programs],
      "shardings": aot.sharding_rows(zip(paths, jax.tree.leaves(abs_params)), param_sh),
  }
