"""Building a run's model and train state on the mesh, in the fixed start order:
resume from the run directory > `init_from` checkpoint > `pretrained` weights > `preset` scratch."""

from __future__ import annotations

import dataclasses
import logging

import jax
import jax.numpy as jnp
from flax import nnx

from xtjax.errors import CheckpointError, ConfigError
from xtjax.models import hf_io, registry
from xtjax.models.heads import HeadConfig
from xtjax.models.init import init_task_model, relayout
from xtjax.models.loading import load_pretrained
from xtjax.runs import start
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


def encoder_start(cfg: TrainConfig, mesh, rules) -> EncoderStart:
  """The encoder of a fresh run from its start source (`xtjax.runs.start`), weights loaded onto the mesh."""
  m = cfg.model
  source = start.encoder_source(cfg)
  if source.kind == "preset":
    fam, enc_cfg, _ = start.encoder_config(source)
    params, tok = None, None
  else:
    pre = load_pretrained(source.location, mesh=mesh, rules=rules, dtype=m.dtype, param_dtype=m.param_dtype)
    fam, enc_cfg, params, tok = pre.family, pre.config, pre.params, pre.tokenizer
  enc_cfg = start.configure_encoder(enc_cfg, m)
  tok_dir = start.tokenizer_override(m)
  if tok_dir is not None:
    tok = hf_io.load_tokenizer(tok_dir)
  if tok is None:
    raise ConfigError("model: no tokenizer found; set model.tokenizer to a tokenizer folder")
  return EncoderStart(fam, enc_cfg, params, tok, source.describe())


def head_configs(tasks) -> dict[str, HeadConfig]:
  return {t.name: HeadConfig(type=t.head_type, num_labels=t.num_labels) for t in tasks}


def build_model(start: EncoderStart, heads: dict[str, HeadConfig], seed: int, mesh, rules):
  """(graphdef, params, shardings): heads freshly initialised; the encoder from `start` (or initialised)."""

  graphdef, params, shardings = init_task_model(start.family, start.config, heads, mesh, rules, seed)
  if start.params is not None:
    got = start.params
    if jax.tree.structure(params["encoder"]) != jax.tree.structure(got):  # saved in the other layer layout
      got = relayout(got, params["encoder"], shardings["encoder"], where=start.source)
    enc_shapes = jax.tree.map(lambda x: (x.shape, x.dtype), params["encoder"])
    got_shapes = jax.tree.map(lambda x: (x.shape, x.dtype), got)
    if jax.tree.structure(params["encoder"]) != jax.tree.structure(got) or enc_shapes != got_shapes:
      raise CheckpointError(f"{start.source}: encoder parameters do not fit the configured model")
    params["encoder"] = got
  return graphdef, params, shardings


def init_state(params, tx, seed: int, rng_impl: str = "threefry2x32") -> TrainState:
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                    rng=new_rng(seed, rng_impl))
