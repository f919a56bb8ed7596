"""Building a run's model and train state on the mesh, in the fixed start order:
resume from the run directory > `init_from` checkpoint > `pretrained` weights > `preset` scratch."""

from __future__ import annotations

import dataclasses
import logging

import jax
import jax.numpy as jnp
from flax import nnx

from xtjax.errors import CheckpointError, ConfigError
from xtjax.models import hf_io, registry, store
from xtjax.models import lora as lora_lib
from xtjax.models.heads import HeadConfig, uses_lm_logits
from xtjax.models.init import init_task_model, relayout
from xtjax.models.scan import to_layout
from xtjax.models.loading import load_pretrained
from xtjax.runs import start
from xtjax.runs.schema import TrainConfig
from xtjax.tasks import registry as task_registry
from xtjax.train.state import TrainState, new_rng, trained_part

log = logging.getLogger(__name__)


@dataclasses.dataclass
class EncoderStart:
  family: registry.Family
  config: object
  params: nnx.State | None  # encoder params on the mesh, or None for scratch
  tokenizer: object
  source: str
  base: dict | None = None  # the source's kind and location (recorded with a LoRA run's adapters)
  adapters: dict | None = None  # LoRA adapters to continue (pure host arrays, rooted like the TaskModel)


def lm_logits_used(cfg: TrainConfig) -> bool:
  """Whether any task of the run (trained or evaluated) reads the model's LM logits: if none does, the run's
  model leaves out what only they need (an LM head, an encoder-decoder's decoder: `ModelConfig.for_heads`)."""
  return uses_lm_logits(task_registry.get(t.name).head_type for t in cfg.tasks)


def run_encoder_config(enc_cfg, cfg: TrainConfig, where: str = "model"):
  """The encoder config a run builds: its dtypes and overrides (`start.configure_encoder`), only what its
  heads use."""
  return start.configure_encoder(enc_cfg, cfg.model, where).for_heads(lm_logits_used(cfg))


def encoder_start(cfg: TrainConfig, mesh, rules) -> EncoderStart:
  """The encoder of a fresh run from its start source (`xtjax.runs.start`), weights loaded onto the mesh
  (without the parts no head of the run uses, `lm_logits_used`)."""
  m = cfg.model
  source = start.encoder_source(cfg)
  lm = lm_logits_used(cfg)
  if source.kind == "preset":
    fam, enc_cfg, _ = start.encoder_config(source)
    params, tok = None, None
  else:
    pre = load_pretrained(source.location, mesh=mesh, rules=rules, dtype=m.dtype, param_dtype=m.param_dtype,
                          lm_logits=lm)
    fam, enc_cfg, params, tok = pre.family, pre.config, pre.params, pre.tokenizer
  if lm and enc_cfg.lm_part_left_out:
    raise ConfigError(f"{source.describe()}: saved without its decoder or LM head (no head of the run that saved "
                      "it read the LM logits), which this run's text-to-text task needs; start from the pretrained "
                      "checkpoint instead")
  enc_cfg = run_encoder_config(enc_cfg, cfg)
  tok_dir = start.tokenizer_override(m)
  if tok_dir is not None:
    tok = hf_io.load_tokenizer(tok_dir)
  if tok is None:
    raise ConfigError("model: no tokenizer found; set model.tokenizer to a tokenizer folder")
  adapters = store.load_adapters(source.adapters) if source.adapters else None
  return EncoderStart(fam, enc_cfg, params, tok, source.describe(), source.base(), adapters)


def head_configs(tasks) -> dict[str, HeadConfig]:
  return {t.name: HeadConfig(type=t.head_type, num_labels=t.num_labels) for t in tasks}


def build_model(start: EncoderStart, heads: dict[str, HeadConfig], seed: int, mesh, rules, lora=None):
  """(graphdef, params, shardings): heads (and LoRA adapters) freshly initialised; the encoder from
  `start` (or initialised), its adapters from `start.adapters` when it continues a LoRA run's."""

  graphdef, params, shardings = init_task_model(start.family, start.config, heads, mesh, rules, seed, lora)
  return graphdef, place_start(start, params, shardings, lora), shardings


def place_start(start: EncoderStart, params, shardings, lora=None):
  """`params` (freshly initialised on the mesh, `shardings`) with the encoder of `start` in place when it
  has weights (relaid out if saved in the other layer layout), and its LoRA adapters when it continues some."""
  if start.params is not None:
    base, adapters = params["encoder"].split(lambda path, _: lora_lib.is_adapter_path(_path(path)), ...)[::-1]
    got = start.params
    if jax.tree.structure(base) != jax.tree.structure(got):  # saved in the other layer layout
      base_sh = shardings["encoder"].split(lambda path, _: lora_lib.is_adapter_path(_path(path)), ...)[1]
      got = relayout(got, base, base_sh, where=start.source)
    enc_shapes = jax.tree.map(lambda x: (x.shape, x.dtype), base)
    got_shapes = jax.tree.map(lambda x: (x.shape, x.dtype), got)
    if jax.tree.structure(base) != jax.tree.structure(got) or enc_shapes != got_shapes:
      raise CheckpointError(f"{start.source}: encoder parameters do not fit the configured model")
    params["encoder"] = nnx.merge_state(got, adapters)
  if start.adapters is not None:
    _continue_adapters(params, shardings, start, lora)
  return params


def _path(path) -> str:
  return "/".join(map(str, path))


def _continue_adapters(params, shardings, start: EncoderStart, lora) -> None:
  """Puts the saved adapters in place of the fresh ones; the two sets must have the same paths and shapes."""
  if lora is None:
    raise ConfigError(f"init_from_lora: adapters ({start.source}): this run has no `lora` config to train them")
  pure = nnx.to_pure_dict(params)
  fresh = lora_lib.adapters_only(pure)
  want = _flat(fresh)
  have = _flat(to_layout(start.adapters, fresh))  # saved per layer; this run's layers may be stacked
  if want.keys() != have.keys():
    only = lambda a, b: sorted(a.keys() - b.keys())[:3]
    raise ConfigError(f"{start.source}: the saved adapters do not match this run's lora.targets: saved only "
                      f"{only(have, want)}, configured only {only(want, have)}")
  sh = _flat(nnx.to_pure_dict(shardings))
  for p, (keys, value) in want.items():
    got = have[p][1]
    if got.shape != value.shape:
      raise ConfigError(f"{start.source}: adapter {p} has shape {list(got.shape)}, this run's lora (rank "
                        f"{lora.rank}) expects {list(value.shape)}")
    node = pure
    for k in keys[:-1]:
      node = node[k]
    node[keys[-1]] = jax.device_put(got.astype(value.dtype), sh[p][1])
  nnx.replace_by_pure_dict(params, pure)


def _flat(tree, keys=()) -> dict[str, tuple[tuple, object]]:
  """{'a/0/b': ((a, 0, b), leaf)} of a nested dict (keys compared as strings: Orbax stores them so)."""
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flat(v, keys + (k,)))
    else:
      out[_path(keys + (k,))] = (keys + (k,), v)
  return out


def init_state(params, tx, seed: int, rng_impl: str = "threefry2x32", lora=None) -> TrainState:
  """Step 0; optimizer state for the trained part only (`state.trained_part`)."""
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(trained_part(params, lora)[0]),
                    rng=new_rng(seed, rng_impl))
