"""The train program of a run, built once from shapes: what `xtjax train`, `xtjax plan` and `xtjax bench train`
all run.

`build_train_program` makes the model (graphdef and parameter shapes), its shardings by the rules, the
optimizer and schedule, the abstract train state and its shardings; `TrainProgram.train_step` is the jitted
step of one task. The trainer then materialises parameters and state on the mesh; `plan` lowers and
compiles the same step for a described slice. So the plan describes the trainer by construction, and a
change to what is trained or how (which parameters get gradients, remat, the step) is made here once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import optax
from flax import nnx
from jax.sharding import Mesh

from xtjax.checkpoint import abstract_like
from xtjax.errors import ConfigError
from xtjax.models import registry
from xtjax.models.heads import HeadConfig
from xtjax.models.init import materialize
from xtjax.models.lora import LoraConfig
from xtjax.models.task_model import TaskModel
from xtjax.parallel.rules import Rules, state_shardings
from xtjax.runs.schema import OptimConfig, TrainConfig
from xtjax.train import optim, setup
from xtjax.train.state import TrainState, state_sharding, trained_part
from xtjax.train.step import compile_train_step, make_train_step


def check_batch_sizes(mesh: Mesh, batch_size: int, grad_accum_steps: int, eval_batch_size: int | None = None) -> None:
  """Every micro-batch (and eval batch) must split evenly over the mesh's data-parallel devices."""
  n_data = mesh.shape["data"] * mesh.shape["fsdp"]
  sizes = [("batch_size / grad_accum_steps", batch_size // grad_accum_steps)]
  if eval_batch_size is not None:
    sizes.append(("eval_batch_size", eval_batch_size))
  for what, size in sizes:
    if size % n_data:
      raise ConfigError(f"{what} = {size} is not divisible by the {n_data} data-parallel devices of the mesh "
                        f"{dict(mesh.shape)}")


@dataclasses.dataclass(frozen=True, eq=False)
class TrainProgram:
  """One run's train program, abstract: no parameter is allocated until `initial_params`."""

  family: registry.Family
  model_config: Any
  heads: Mapping[str, HeadConfig]  # every trained task's head, by task name
  mesh: Mesh
  rules: Rules
  optim: OptimConfig
  total_steps: int  # the schedule's length (its warm-up and decay are constants of the step)
  seed: int
  lora: LoraConfig | None
  rng_impl: str
  dropout: bool
  graphdef: nnx.GraphDef
  abstract_params: nnx.State  # ShapeDtypeStructs
  param_sh: nnx.State
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  abstract_state: TrainState  # ShapeDtypeStructs carrying `state_sh` (what a checkpoint restores into)
  state_sh: TrainState

  @property
  def trained(self) -> nnx.State:
    """The abstract parameters that get gradients and optimizer state (all, or LoRA's adapters and heads)."""
    return trained_part(self.abstract_params, self.lora)[0]

  @property
  def trained_sh(self) -> nnx.State:
    return trained_part(self.param_sh, self.lora)[0]

  def task_id(self, task: str) -> int:
    """The task's index in its dropout keys: its place among the trained tasks by name (`MultiTaskStream.names`)."""
    return sorted(self.heads).index(task)

  def initial_params(self, start: setup.EncoderStart | None = None) -> nnx.State:
    """Parameters on the mesh, each shard initialised on its own device; the encoder (and LoRA adapters)
    of `start` put in place of the random ones when it has weights."""
    ctor = lambda: TaskModel(self.family, self.model_config, dict(self.heads), rngs=nnx.Rngs(self.seed),
                             lora=self.lora)
    params = materialize(ctor, self.param_sh)
    return params if start is None else setup.place_start(start, params, self.param_sh, self.lora)

  def init_state(self, params: nnx.State) -> TrainState:
    """Step 0 of training `params`, sharded like `state_sh`."""
    return jax.jit(self._init, out_shardings=self.state_sh)(params)

  def _init(self, params) -> TrainState:
    return setup.init_state(params, self.tx, self.seed, self.rng_impl, self.lora)

  def train_step(self, task: str, batch_sh=None) -> Callable:
    """The jitted (not yet lowered) step of `task`, its state donated; `batch_sh`: the batch's shardings
    (None: those of the arrays passed)."""
    fn = make_train_step(self.graphdef, self.tx, task, self.heads[task].type, self.optim.grad_accum_steps,
                         dropout=self.dropout, task_id=self.task_id(task), rng_impl=self.rng_impl, lora=self.lora)
    return compile_train_step(fn, self.state_sh, batch_sh, self.mesh, self.rules)


def build_train_program(family: registry.Family, model_config, heads: Mapping[str, HeadConfig], mesh: Mesh,
                        rules: Rules, *, optim_cfg: OptimConfig, total_steps: int, batch_size: int, seed: int = 0,
                        lora: LoraConfig | None = None, rng_impl: str = "threefry2x32",
                        dropout: bool = True) -> TrainProgram:
  """The program that trains `heads` on `family`/`model_config` over `mesh`, from shapes alone (seconds)."""
  check_batch_sizes(mesh, batch_size, optim_cfg.grad_accum_steps)
  graphdef, abs_params = nnx.split(nnx.eval_shape(
      lambda: TaskModel(family, model_config, dict(heads), rngs=nnx.Rngs(seed), lora=lora)))
  param_sh = state_shardings(abs_params, mesh, rules)
  tx, schedule = optim.build(optim_cfg, trained_part(abs_params, lora)[0], total_steps,
                             model_config.num_layers)
  abs_state = jax.eval_shape(lambda p: setup.init_state(p, tx, seed, rng_impl, lora), abs_params)
  state_sh = state_sharding(abs_state, param_sh, mesh, lora)
  return TrainProgram(family, model_config, dict(heads), mesh, rules, optim_cfg, total_steps, seed, lora, rng_impl,
                      dropout, graphdef, abs_params, param_sh, tx, schedule, abstract_like(abs_state, state_sh),
                      state_sh)


def run_program(cfg: TrainConfig, family: registry.Family, model_config, heads: Mapping[str, HeadConfig], mesh: Mesh,
                rules: Rules, total_steps: int) -> TrainProgram:
  """The program of a run's config (`xtjax train` and `xtjax plan`)."""
  return build_train_program(family, model_config, heads, mesh, rules, optim_cfg=cfg.optim, total_steps=total_steps,
                             batch_size=cfg.batch_size, seed=cfg.seed, lora=cfg.lora, rng_impl=cfg.dropout_rng)
