"""Gemma 2: Hugging Face config and strict tensor mapping for `gemma2.Gemma2`, and the 2B / 9B / 27B presets.

Checkpoints are read as transformers writes `Gemma2ForCausalLM` (`model.layers.{i}.self_attn.q_proj.weight`,
the four norms `input_layernorm`, `post_attention_layernorm`, `pre_feedforward_layernorm`,
`post_feedforward_layernorm`; a bare `Gemma2Model` without the `model.` prefix also loads). Layer i is
pair i // 2's `sliding` (even i) or `full` (odd i) layer. The LM head is the embedding: an
`lm_head.weight` in the checkpoint must equal it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from xtjax.errors import CheckpointError
from xtjax.models import hf_mapping as M
from xtjax.models.decoder_family import _rope_from_hf, _rope_to_hf
from xtjax.models.family import Family
from xtjax.models.gemma2 import LAYER_KINDS, Gemma2, Gemma2Config
from xtjax.models.scan import to_per_layer

_ANCHOR = "model.embed_tokens.weight"
_HF_LAYER_TYPES = {"sliding": "sliding_attention", "full": "full_attention"}


def _layer_types(n: int) -> list[str]:
  return [_HF_LAYER_TYPES[LAYER_KINDS[i % 2]] for i in range(n)]


def config_from_hf(hf: Mapping[str, Any]) -> Gemma2Config:
  eos = hf.get("eos_token_id", 1)
  with M.hf_config_errors("gemma2"):
    n = hf["num_hidden_layers"]
    if hf.get("layer_types") not in (None, _layer_types(n)):
      raise CheckpointError(f"config.json: layer_types {hf['layer_types']} is not Gemma 2's alternation "
                            "(sliding_attention, full_attention, ...), the only one supported")
    if hf.get("use_bidirectional_attention"):
      raise CheckpointError("config.json: use_bidirectional_attention=true is not supported")
    heads = hf["num_attention_heads"]
    bias = bool(hf.get("attention_bias", False))
    return Gemma2Config(
        vocab_size=hf["vocab_size"],
        hidden_size=hf["hidden_size"],
        num_layers=n,
        num_heads=heads,
        num_kv_heads=hf.get("num_key_value_heads") or heads,
        head_dim=hf.get("head_dim") or 0,
        intermediate_size=hf["intermediate_size"],
        max_position_embeddings=hf["max_position_embeddings"],
        rms_norm_eps=hf.get("rms_norm_eps", 1e-6),
        hidden_act=hf.get("hidden_activation") or hf.get("hidden_act") or "gelu_pytorch_tanh",
        **_rope_from_hf(hf),
        attention_bias=bias,
        attention_out_bias=bias,
        sliding_window=int(hf.get("sliding_window") or 0),
        query_pre_attn_scalar=int(hf["query_pre_attn_scalar"]),
        attn_logit_softcapping=float(hf.get("attn_logit_softcapping") or 0.0),
        final_logit_softcapping=float(hf.get("final_logit_softcapping") or 0.0),
        attention_dropout_rate=float(hf.get("attention_dropout", 0.0) or 0.0),
        tie_word_embeddings=bool(hf.get("tie_word_embeddings", True)),
        pad_token_id=hf.get("pad_token_id"),
        bos_token_id=hf.get("bos_token_id"),
        eos_token_ids=tuple(eos) if isinstance(eos, list) else (1 if eos is None else eos,),
        initializer_range=hf.get("initializer_range", 0.02),
    )


def hf_config_from(cfg: Gemma2Config) -> dict:
  eos = list(cfg.eos_token_ids)
  return dict(
      model_type="gemma2",
      vocab_size=cfg.vocab_size,
      hidden_size=cfg.hidden_size,
      num_hidden_layers=cfg.num_layers,
      num_attention_heads=cfg.num_heads,
      num_key_value_heads=cfg.num_kv_heads,
      head_dim=cfg.head_dim,
      intermediate_size=cfg.intermediate_size,
      max_position_embeddings=cfg.max_position_embeddings,
      rms_norm_eps=cfg.rms_norm_eps,
      hidden_activation=cfg.hidden_act,
      rope_parameters=_rope_to_hf(cfg),
      rope_theta=cfg.rope_theta,
      attention_bias=cfg.attention_bias,
      attention_dropout=cfg.attention_dropout_rate,
      sliding_window=cfg.sliding_window,
      layer_types=_layer_types(cfg.num_layers),
      query_pre_attn_scalar=cfg.query_pre_attn_scalar,
      attn_logit_softcapping=cfg.attn_logit_softcapping or None,
      final_logit_softcapping=cfg.final_logit_softcapping or None,
      tie_word_embeddings=True,
      pad_token_id=cfg.pad_token_id,
      bos_token_id=cfg.bos_token_id,
      eos_token_id=eos[0] if len(eos) == 1 else eos,
      initializer_range=cfg.initializer_range,
      use_cache=True,
  )


def _rules(cfg: Gemma2Config) -> list[M.Rule]:
  D, F, V = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
  Q, KV = cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim
  r = [M.copy(("embed",), _ANCHOR, (V, D)), M.copy(("final_norm", "scale"), "model.norm.weight", (D,))]

  def dense(ours, hf, d_in, d_out):
    out = [M.linear(ours + ("kernel",), hf + ".weight", d_in, d_out)]
    return out + ([M.copy(ours + ("bias",), hf + ".bias", (d_out,))] if cfg.attention_bias else [])

  norms = (("attention_norm", "input_layernorm"), ("post_attention_norm", "post_attention_layernorm"),
           ("mlp_norm", "pre_feedforward_layernorm"), ("post_mlp_norm", "post_feedforward_layernorm"))
  for i in range(cfg.num_layers):
    hf, us = f"model.layers.{i}.", ("layers", i // 2, LAYER_KINDS[i % 2])
    r += dense(us + ("attention", "q"), hf + "self_attn.q_proj", D, Q)
    r += dense(us + ("attention", "k"), hf + "self_attn.k_proj", D, KV)
    r += dense(us + ("attention", "v"), hf + "self_attn.v_proj", D, KV)
    r += dense(us + ("attention", "o"), hf + "self_attn.o_proj", Q, D)
    for ours, theirs in (("gate", "gate_proj"), ("up", "up_proj")):
      r.append(M.linear(us + ("mlp", ours, "kernel"), hf + f"mlp.{theirs}.weight", D, F))
    r.append(M.linear(us + ("mlp", "down", "kernel"), hf + "mlp.down_proj.weight", F, D))
    r += [M.copy(us + (ours, "scale"), hf + theirs + ".weight", (D,)) for ours, theirs in norms]
  return r


def tensor_plan(cfg: Gemma2Config, names, where: str = "checkpoint") -> M.TensorPlan:
  """The rules under this checkpoint's names (a bare `Gemma2Model` has no `model.` prefix); an
  `lm_head.weight` is ignored once checked equal to the embedding."""
  rules = _rules(cfg)
  if _ANCHOR not in set(names):
    if "embed_tokens.weight" not in set(names):
      raise CheckpointError(f"{where}: tensor {_ANCHOR!r} not found (nor 'embed_tokens.weight'); "
                            "is this checkpoint of the architecture its config.json names?")
    rules = [dataclasses.replace(r, hf=r.hf.removeprefix("model.")) for r in rules]
  return M.TensorPlan(rules, [r"lm_head\.weight"], [("lm_head.weight", rules[0].hf, "Gemma 2 ties them")])


def params_from_hf(cfg: Gemma2Config, tensors, where: str = "checkpoint"):
  return M.import_plan(tensor_plan(cfg, tensors, where), tensors, where)


def params_to_hf(cfg: Gemma2Config, params) -> dict:
  return M.export_tensors(_rules(cfg), to_per_layer(params))


# Real sizes, as in google/gemma-2-2b, google/gemma-2-9b and google/gemma-2-27b's config.json.
PRESETS = {
    "gemma-2-2b": Gemma2Config(),
    "gemma-2-9b": Gemma2Config(hidden_size=3584, num_layers=42, num_heads=16, num_kv_heads=8,
                               intermediate_size=14336),
    "gemma-2-27b": Gemma2Config(hidden_size=4608, num_layers=46, num_heads=32, num_kv_heads=16, head_dim=128,
                                intermediate_size=36864, query_pre_attn_scalar=144),
}


FAMILY = Family(
    name="gemma2",
    config_cls=Gemma2Config,
    hf_model_types=("gemma2",),
    build=Gemma2,
    config_from_hf=config_from_hf,
    hf_config_from=hf_config_from,
    params_from_hf=params_from_hf,
    params_to_hf=params_to_hf,
    hf_architecture=lambda cfg: "Gemma2ForCausalLM",
    presets=PRESETS,
    tensor_plan=tensor_plan,
)
