"""Building a run's model and train state on the mesh, in the fixed start order:
resume from the run directory > `init_from` checkpoint > `pretrained` weights > `preset` scratch."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import jax
import jax.numpy as jnp
from flax import nnx

from xtjax.errors import CheckpointError, ConfigError
from xtjax.models import hf_io, registry, store
from xtjax.models.heads import HeadConfig
from xtjax.models.loading import load_pretrained
from xtjax.models.task_model import TaskModel
from xtjax.parallel.rules import state_shardings
from xtjax.runs.schema import TrainConfig
from xtjax.train.state import TrainState, new_rng

log = logging.getLogger(__name__)


@dataclasses.dataclass
class EncoderStart:
  family: registry.Family
  config: object
  params: nnx.State | None  # encoder params on the mesh, or None for scratch
  tokenizer: object
  source: str


def resolve_init_from(path: str) -> Path:
  """A run directory means its exported `model/` folder; an xtjax model folder is used as is."""
  p = Path(path)
  if store.is_model_dir(p):
    return p
  if store.is_model_dir(p / "model"):
    return p / "model"
  raise CheckpointError(f"init_from {path}: neither an xtjax model folder nor a finished run directory "
                        f"(no {p / 'model' / store.MARKER})")


def encoder_start(cfg: TrainConfig, mesh, rules) -> EncoderStart:
  m = cfg.model
  if cfg.init_from or m.pretrained:
    src = str(resolve_init_from(cfg.init_from)) if cfg.init_from else m.pretrained
    pre = load_pretrained(src, mesh=mesh, rules=rules, dtype=m.dtype, param_dtype=m.param_dtype)
    fam, enc_cfg, params, tok = pre.family, pre.config, pre.params, pre.tokenizer
    how = ("init_from" if cfg.init_from else "pretrained") + f" {src}"
  else:
    fam, enc_cfg = registry.preset(m.preset)
    enc_cfg = dataclasses.replace(enc_cfg, dtype=m.dtype, param_dtype=m.param_dtype)
    params, tok = None, None
    how = f"scratch (preset {m.preset})"
  if m.config_overrides:
    try:
      enc_cfg = dataclasses.replace(enc_cfg, **m.config_overrides)
    except (TypeError, ValueError) as e:
      raise ConfigError(f"model.config_overrides: {e}") from e
  if m.tokenizer:
    tok = hf_io.load_tokenizer(hf_io.resolve(m.tokenizer))
  if tok is None:
    raise ConfigError("model: no tokenizer found; set model.tokenizer to a tokenizer folder")
  return EncoderStart(fam, enc_cfg, params, tok, how)


def head_configs(tasks) -> dict[str, HeadConfig]:
  return {t.name: HeadConfig(type=t.head_type, num_labels=t.num_labels) for t in tasks}


def build_model(start: EncoderStart, heads: dict[str, HeadConfig], seed: int, mesh, rules):
  """(graphdef, params): heads freshly initialised; the encoder from `start` (or initialised)."""

  def ctor():
    return TaskModel(start.family, start.config, heads, rngs=nnx.Rngs(seed))

  graphdef, abs_params = nnx.split(nnx.eval_shape(ctor))
  shardings = state_shardings(abs_params, mesh, rules)
  params = jax.jit(lambda: nnx.split(ctor())[1], out_shardings=shardings)()
  if start.params is not None:
    enc_shapes = jax.tree.map(lambda x: (x.shape, x.dtype), params["encoder"])
    got_shapes = jax.tree.map(lambda x: (x.shape, x.dtype), start.params)
    if jax.tree.structure(params["encoder"]) != jax.tree.structure(start.params) or enc_shapes != got_shapes:
      raise CheckpointError(f"{start.source}: encoder parameters do not fit the configured model")
    params["encoder"] = start.params
  return graphdef, params, shardings


def init_state(params, tx, seed: int, rng_impl: str = "threefry2x32") -> TrainState:
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                    rng=new_rng(seed, rng_impl))
