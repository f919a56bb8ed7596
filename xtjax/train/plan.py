"""What a training run costs on a slice, without running it: `xtjax plan`.

Builds exactly what `Trainer.setup` builds (model and heads, `optim.build`, `state_sharding`, the
mesh and rules, `make_train_step` with its micro-batching, the shared eval function) from shapes only, and
compiles the train and eval steps ahead of time for a described slice (`xtjax.parallel.topology`).
"""

from __future__ import annotations

import dataclasses
import types

import jax
import jax.numpy as jnp
from flax import nnx

from xtjax.errors import ConfigError
from xtjax.evaluation.programs import head_fn
from xtjax.models.heads import head_kind
from xtjax.models.task_model import TaskModel
from xtjax.parallel import plan as aot
from xtjax.parallel import topology
from xtjax.parallel.batching import batch_sharding
from xtjax.parallel.mesh import make_mesh
from xtjax.parallel.rules import (
  rules_from_config,
  state_shardings,
  traced_with_activation_sharding,
)
from xtjax.runs import start
from xtjax.runs.schema import TrainConfig
from xtjax.tasks import registry as task_registry
from xtjax.train import optim, setup
from xtjax.train.optim import tree_paths
from xtjax.train.state import state_sharding, trained_part
from xtjax.train.step import compile_train_step, make_train_step


def model_config(cfg: TrainConfig):
  """(family, config) of the run's encoder in the trainer's start order, read from configs alone (no weights)."""
  family, enc_cfg, _ = start.encoder_config(start.encoder_source(cfg))
  return family, start.configure_encoder(enc_cfg, cfg.model)


def abstract_batch(head_type: str, batch: int, length: int, with_types: bool, choices: int,
                   target_length: int = 32) -> dict:
  """The arrays a task's featuriser produces for one batch, as shapes (see `tasks.base.Features`)."""
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
  else:
    out["labels"] = jax.ShapeDtypeStruct((batch,), i32)
  return out


def _with_shardings(batch: dict, mesh, rules) -> tuple[dict, dict]:
  shardings = {k: batch_sharding(mesh, rules, v.shape) for k, v in batch.items()}
  return shardings, {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=shardings[k]) for k, v in batch.items()}


def _train_program(cfg: TrainConfig, slice_: topology.Slice, choices: int) -> types.SimpleNamespace:
  """What `xtjax train` would run for `cfg` on `slice_`, abstract: the mesh, model, optimizer state,
  shardings, the first training task's batch and its jitted train step (not yet lowered)."""
  family, enc_cfg = model_config(cfg)
  devs = topology.devices(slice_)
  mesh = make_mesh(dataclasses.replace(cfg.mesh, dcn_data=slice_.num_slices), devices=devs)
  rules = rules_from_config(cfg.rules)
  tasks = [task_registry.get(t.name) for t in cfg.tasks]
  train_tasks = [t for t in tasks if t.head_type != "retrieval"]
  if not train_tasks:
    raise ConfigError(f"tasks {[t.name for t in tasks]}: no task with a head to train")
  task = train_tasks[0]
  n_data = mesh.shape["data"] * mesh.shape["fsdp"]
  micro = cfg.batch_size // cfg.optim.grad_accum_steps
  if micro % n_data:
    raise ConfigError(f"batch_size / grad_accum_steps = {micro} is not divisible by the {n_data} data-parallel "
                      f"devices of the mesh {dict(mesh.shape)}")

  heads = setup.head_configs(train_tasks)
  graphdef, abs_params = nnx.split(nnx.eval_shape(
      lambda: TaskModel(family, enc_cfg, heads, rngs=nnx.Rngs(cfg.seed), lora=cfg.lora)))
  param_sh = state_shardings(abs_params, mesh, rules)
  trained, trained_sh = trained_part(abs_params, cfg.lora)[0], trained_part(param_sh, cfg.lora)[0]
  tx, _ = optim.build(cfg.optim, trained, cfg.steps or 1000, enc_cfg.num_layers)
  abs_state = jax.eval_shape(lambda p: setup.init_state(p, tx, cfg.seed, cfg.dropout_rng, cfg.lora), abs_params)
  state_sh = state_sharding(abs_state, param_sh, mesh, cfg.lora)

  with_types = enc_cfg.token_types
  batch_sh, batch = _with_shardings(abstract_batch(task.head_type, cfg.batch_size, cfg.features.max_length,
                                                   with_types, choices, cfg.features.max_target_length), mesh, rules)
  step = make_train_step(graphdef, tx, task.name, task.head_type, cfg.optim.grad_accum_steps, task_id=0,
                         rng_impl=cfg.dropout_rng, lora=cfg.lora)
  return types.SimpleNamespace(
      family=family, enc_cfg=enc_cfg, devices=devs, mesh=mesh, rules=rules, task=task, graphdef=graphdef,
      abs_params=abs_params, param_sh=param_sh, trained=trained, trained_sh=trained_sh, abs_state=abs_state,
      state_sh=state_sh, batch=batch, with_types=with_types,
      step=compile_train_step(step, state_sh, batch_sh, mesh, rules))


def train_program_hash(cfg: TrainConfig, slice_: topology.Slice, choices: int = 4) -> str:
  """`aot.program_hash` of the train step `plan` compiles, lowered only (seconds, not XLA's minutes): a
  compile made for the same hash is a compile of this program."""
  p = _train_program(cfg, slice_, choices)
  return aot.program_hash(p.step.trace(p.abs_state, p.batch).lower())


def plan(cfg: TrainConfig, slice_: topology.Slice, choices: int = 4, compile_eval: bool = True,
         compile_train: bool = True) -> dict:
  """Per-device memory, compiled FLOPs and compile time of the run's first training task.

  `compile_train=False` compiles nothing: the per-device parameters, optimizer state and gradients
  alone, a lower bound that already rules out slices too small for the model."""
  p = _train_program(cfg, slice_, choices)
  enc_cfg, mesh, rules, task, length = p.enc_cfg, p.mesh, p.rules, p.task, cfg.features.max_length
  abs_params, param_sh, trained, trained_sh, abs_state, state_sh = (
      p.abs_params, p.param_sh, p.trained, p.trained_sh, p.abs_state, p.state_sh)
  programs = [aot.measure("train_step", p.step, abs_state, p.batch)] if compile_train else []
  if compile_eval and compile_train and not head_kind(task.head_type).seq2seq:  # text-to-text evaluates by generation
    eval_sh, eval_batch = _with_shardings(
        abstract_batch(task.head_type, cfg.eval_batch_size, length, p.with_types, choices), mesh, rules)
    eval_step = jax.jit(traced_with_activation_sharding(head_fn(p.graphdef, task.name), mesh, rules),  # the trainer's
                        in_shardings=(param_sh, eval_sh))  # eval function, as `BucketedPrograms` compiles it
    programs.append(aot.measure("eval_step", eval_step, abs_params, eval_batch))

  paths = jax.tree.leaves(tree_paths(abs_params))
  params_b = aot.sharded_bytes(abs_params, param_sh)
  opt_b = aot.sharded_bytes(abs_state.opt_state, state_sh.opt_state)
  grads_b = aot.sharded_bytes(trained, trained_sh)  # LoRA: the adapters' and heads' gradients only
  hbm = slice_.chip.hbm_bytes if slice_.chip is not None else None
  state_b = params_b + grads_b + opt_b
  if programs:
    fits = None if hbm is None else all(p.peak_bytes <= aot.HEADROOM * hbm for p in programs)
  else:  # without activations only a "no" is certain
    fits = None if hbm is None or state_b <= aot.HEADROOM * hbm else False
  return {
      "topology": slice_.name, "devices": len(p.devices), "num_slices": slice_.num_slices,
      "mesh": dict(mesh.shape), "task": task.name, "head_type": task.head_type,
      "num_labels": task.num_labels, "choices": choices if task.head_type == "multiple_choice" else 1,
      "batch_size": cfg.batch_size, "grad_accum_steps": cfg.optim.grad_accum_steps, "max_length": length,
      "max_target_length": cfg.features.max_target_length if head_kind(task.head_type).seq2seq else 0,
      "dtype": enc_cfg.dtype, "param_dtype": enc_cfg.param_dtype, "model": p.family.name, "encoder_config": enc_cfg,
      "num_params": int(sum(x.size for x in jax.tree.leaves(abs_params))),
      "trained_params": int(sum(x.size for x in jax.tree.leaves(trained))),
      "per_device": {"params": params_b, "optimizer_state": opt_b, "gradients": grads_b,
                     "activations_and_temporaries": programs[0].temp_bytes if programs else None,
                     "total": programs[0].peak_bytes if programs else state_b},
      "hbm_bytes": hbm, "headroom": aot.HEADROOM,
      "fits": fits,
      "peak_bf16": slice_.chip.peak_bf16 if slice_.chip is not None else None,
      "chip_source": slice_.chip.source if slice_.chip is not None else None,
      "programs": [dataclasses.asdict(p) | {"peak_bytes": p.peak_bytes} for p in programs],
      "shardings": aot.sharding_rows(zip(paths, jax.tree.leaves(abs_params)), param_sh),
  }
