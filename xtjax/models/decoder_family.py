"""Llama / Qwen2 / Mistral: Hugging Face config and strict tensor mapping for `decoder.Decoder`, and presets.

Checkpoints are read as transformers writes them (`model.layers.{i}.self_attn.q_proj.weight`, ...,
`lm_head.weight`; a bare `LlamaModel` without the `model.` prefix also loads). A tied checkpoint
(Llama 3.2 1B/3B) has no `lm_head.weight`, or one equal to the embedding; an untied config whose
checkpoint lacks the head is an error naming it. A config built without its LM head (`with_lm_head=False`:
no head of the run reads the LM logits) skips `lm_head.weight` by name, and exports as the bare `LlamaModel`
(`Qwen2Model`, `MistralModel`), which is what such a folder holds; a config.json naming a bare model loads so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from xtjax.errors import CheckpointError
from xtjax.models import hf_mapping as M
from xtjax.models.decoder import Decoder, DecoderConfig
from xtjax.models.family import Family
from xtjax.models.scan import to_per_layer

_ARCH = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "mistral": "MistralForCausalLM"}
_BASE_ARCH = {"llama": "LlamaModel", "qwen2": "Qwen2Model", "mistral": "MistralModel"}  # no LM head
_ANCHOR = "model.embed_tokens.weight"


def _rope_from_hf(hf: Mapping[str, Any]) -> dict:
  """transformers >= 5 keeps RoPE settings in `rope_parameters`; older configs in rope_theta + rope_scaling."""
  rope = dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})
  kind = rope.get("rope_type", rope.get("type", "default"))
  out = dict(rope_theta=float(rope.get("rope_theta", hf.get("rope_theta", 10000.0))), rope_type=kind)
  if kind == "default":
    return out
  out["rope_factor"] = float(rope["factor"])
  if kind in ("llama3", "yarn"):
    out["rope_original_max_position_embeddings"] = int(
        rope.get("original_max_position_embeddings") or hf["max_position_embeddings"])
  if kind == "llama3":
    out.update(rope_low_freq_factor=float(rope["low_freq_factor"]),
               rope_high_freq_factor=float(rope["high_freq_factor"]))
  if kind == "yarn":
    if rope.get("mscale") or rope.get("mscale_all_dim"):
      raise CheckpointError("config.json: YaRN with mscale / mscale_all_dim (DeepSeek) is not supported")
    out.update(rope_beta_fast=float(rope.get("beta_fast") or 32), rope_beta_slow=float(rope.get("beta_slow") or 1),
               rope_attention_factor=float(rope.get("attention_factor") or 0.0),
               rope_truncate=bool(rope.get("truncate", True)))
  return out


def _sliding_window(hf: Mapping[str, Any], mt: str) -> int:
  if mt == "qwen2":
    if hf.get("use_sliding_window"):  # Qwen2 windows only the layers from max_window_layers on
      raise CheckpointError("config.json: qwen2 with use_sliding_window=true is not supported")
    return 0
  if mt == "mistral":
    return int(hf.get("sliding_window") or 0)
  return 0


def config_from_hf(hf: Mapping[str, Any]) -> DecoderConfig:
  mt = hf.get("model_type")
  if hf.get("pretraining_tp", 1) not in (1, None):
    raise CheckpointError(f"config.json: pretraining_tp {hf['pretraining_tp']} is not supported (only 1)")
  eos = hf.get("eos_token_id", 2)
  bias = bool(hf.get("attention_bias", False))
  with M.hf_config_errors(mt):
    heads = hf["num_attention_heads"]
    return DecoderConfig(
        vocab_size=hf["vocab_size"],
        hidden_size=hf["hidden_size"],
        num_layers=hf["num_hidden_layers"],
        num_heads=heads,
        num_kv_heads=hf.get("num_key_value_heads") or heads,
        head_dim=hf.get("head_dim") or 0,
        intermediate_size=hf["intermediate_size"],
        max_position_embeddings=hf["max_position_embeddings"],
        rms_norm_eps=hf.get("rms_norm_eps", 1e-6),
        hidden_act=hf.get("hidden_act", "silu"),
        **_rope_from_hf(hf),
        attention_bias=True if mt == "qwen2" else bias,
        attention_out_bias=False if mt == "qwen2" else bias,
        mlp_bias=bool(hf.get("mlp_bias", False)),
        sliding_window=_sliding_window(hf, mt),
        attention_dropout_rate=float(hf.get("attention_dropout", 0.0) or 0.0),
        tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
        with_lm_head=list(hf.get("architectures") or ()) != [_BASE_ARCH.get(mt)],
        pad_token_id=hf.get("pad_token_id"),
        bos_token_id=hf.get("bos_token_id"),
        eos_token_ids=tuple(eos) if isinstance(eos, list) else (2 if eos is None else eos,),
        initializer_range=hf.get("initializer_range", 0.02),
        model_type=mt,
    )


def _rope_to_hf(cfg: DecoderConfig) -> dict:
  rope: dict[str, Any] = dict(rope_type=cfg.rope_type, rope_theta=cfg.rope_theta)
  if cfg.rope_type != "default":
    rope["factor"] = cfg.rope_factor
  if cfg.rope_type in ("llama3", "yarn"):
    rope["original_max_position_embeddings"] = (cfg.rope_original_max_position_embeddings
                                                or cfg.max_position_embeddings)
  if cfg.rope_type == "llama3":
    rope.update(low_freq_factor=cfg.rope_low_freq_factor, high_freq_factor=cfg.rope_high_freq_factor)
  if cfg.rope_type == "yarn":
    rope.update(beta_fast=cfg.rope_beta_fast, beta_slow=cfg.rope_beta_slow, truncate=cfg.rope_truncate)
    if cfg.rope_attention_factor:
      rope["attention_factor"] = cfg.rope_attention_factor
  return rope


def hf_config_from(cfg: DecoderConfig) -> dict:
  if cfg.model_type not in _ARCH:
    raise CheckpointError(f"model_type {cfg.model_type!r} cannot be exported; expected one of {sorted(_ARCH)}")
  if cfg.model_type == "qwen2" and not (cfg.attention_bias and not cfg.attention_out_bias):
    raise CheckpointError("qwen2 export needs q/k/v biases and no output bias (attention_bias=True, "
                          "attention_out_bias=False)")
  if cfg.model_type != "qwen2" and cfg.attention_bias != cfg.attention_out_bias:
    raise CheckpointError(f"{cfg.model_type} export needs attention_bias == attention_out_bias (one HF switch)")
  if cfg.sliding_window and cfg.model_type != "mistral":
    raise CheckpointError(f"sliding_window exports only as model_type 'mistral', not {cfg.model_type!r}")
  eos = list(cfg.eos_token_ids)
  d = dict(
      model_type=cfg.model_type,
      vocab_size=cfg.vocab_size,
      hidden_size=cfg.hidden_size,
      num_hidden_layers=cfg.num_layers,
      num_attention_heads=cfg.num_heads,
      num_key_value_heads=cfg.num_kv_heads,
      head_dim=cfg.head_dim,
      intermediate_size=cfg.intermediate_size,
      max_position_embeddings=cfg.max_position_embeddings,
      rms_norm_eps=cfg.rms_norm_eps,
      hidden_act=cfg.hidden_act,
      rope_parameters=_rope_to_hf(cfg),
      rope_theta=cfg.rope_theta,  # also where transformers < 5 reads it
      attention_dropout=cfg.attention_dropout_rate,
      tie_word_embeddings=cfg.tie_word_embeddings,
      pad_token_id=cfg.pad_token_id,
      bos_token_id=cfg.bos_token_id,
      eos_token_id=eos[0] if len(eos) == 1 else eos,
      initializer_range=cfg.initializer_range,
      use_cache=True,
  )
  if cfg.model_type == "llama":
    d.update(attention_bias=cfg.attention_bias, mlp_bias=cfg.mlp_bias)
  elif cfg.mlp_bias:
    raise CheckpointError(f"mlp_bias exports only as model_type 'llama', not {cfg.model_type!r}")
  if cfg.model_type == "mistral":
    d["sliding_window"] = cfg.sliding_window or None
  if cfg.model_type == "qwen2":
    d.update(use_sliding_window=False, sliding_window=None)
  return d


def _rules(cfg: DecoderConfig) -> list[M.Rule]:
  D, F, V = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
  Q, KV = cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim
  r = [M.copy(("embed",), _ANCHOR, (V, D)), M.copy(("final_norm", "scale"), "model.norm.weight", (D,))]

  def dense(ours, hf, d_in, d_out, bias):
    out = [M.linear(ours + ("kernel",), hf + ".weight", d_in, d_out)]
    return out + ([M.copy(ours + ("bias",), hf + ".bias", (d_out,))] if bias else [])

  for i in range(cfg.num_layers):
    hf, us = f"model.layers.{i}.", ("layers", i)
    r += dense(us + ("attention", "q"), hf + "self_attn.q_proj", D, Q, cfg.attention_bias)
    r += dense(us + ("attention", "k"), hf + "self_attn.k_proj", D, KV, cfg.attention_bias)
    r += dense(us + ("attention", "v"), hf + "self_attn.v_proj", D, KV, cfg.attention_bias)
    r += dense(us + ("attention", "o"), hf + "self_attn.o_proj", Q, D, cfg.attention_out_bias)
    r += dense(us + ("mlp", "gate"), hf + "mlp.gate_proj", D, F, cfg.mlp_bias)
    r += dense(us + ("mlp", "up"), hf + "mlp.up_proj", D, F, cfg.mlp_bias)
    r += dense(us + ("mlp", "down"), hf + "mlp.down_proj", F, D, cfg.mlp_bias)
    r.append(M.copy(us + ("attention_norm", "scale"), hf + "input_layernorm.weight", (D,)))
    r.append(M.copy(us + ("mlp_norm", "scale"), hf + "post_attention_layernorm.weight", (D,)))
  if not cfg.tie_word_embeddings and cfg.with_lm_head:
    r.append(M.linear(("lm_head", "kernel"), "lm_head.weight", D, V))
  return r


def tensor_plan(cfg: DecoderConfig, names, where: str = "checkpoint") -> M.TensorPlan:
  """The rules under this checkpoint's names: a bare `LlamaModel` has no `model.` prefix; a tied
  config ignores an `lm_head.weight` that equals the embedding."""
  names = set(names)
  rules = _rules(cfg)
  if _ANCHOR not in names:
    if "embed_tokens.weight" not in names:
      raise CheckpointError(f"{where}: tensor {_ANCHOR!r} not found (nor 'embed_tokens.weight'); "
                            "is this checkpoint of the architecture its config.json names?")
    rules = [dataclasses.replace(r, hf=r.hf.removeprefix("model.")) for r in rules]
  embed = rules[0].hf
  equal = []
  ignore = [r"(model\.)?layers\.\d+\.self_attn\.rotary_emb\.inv_freq"]  # older transformers saved these buffers
  if cfg.tie_word_embeddings:
    ignore.append(r"lm_head\.weight")
    equal.append(("lm_head.weight", embed, "the config ties them (set tie_word_embeddings to false in config.json)"))
  elif not cfg.with_lm_head:  # left out by the run's heads (`for_heads`): the checkpoint keeps it
    ignore.append(r"lm_head\.weight")
  return M.TensorPlan(rules, ignore, equal)


def params_from_hf(cfg: DecoderConfig, tensors, where: str = "checkpoint"):
  return M.import_plan(tensor_plan(cfg, tensors, where), tensors, where)


def params_to_hf(cfg: DecoderConfig, params) -> dict:
  return M.export_tensors(_rules(cfg), to_per_layer(params))


def hf_architecture(cfg: DecoderConfig) -> str:
  if not cfg.generates:
    return _BASE_ARCH[cfg.model_type]
  return _ARCH.get(cfg.model_type, "LlamaForCausalLM")


def _llama3(**kw):
  base = dict(vocab_size=128256, num_kv_heads=8, max_position_embeddings=131072, rms_norm_eps=1e-5,
              rope_theta=500000.0, rope_type="llama3", rope_factor=8.0, rope_low_freq_factor=1.0,
              rope_high_freq_factor=4.0, rope_original_max_position_embeddings=8192, bos_token_id=128000,
              eos_token_ids=(128001,), model_type="llama")
  return DecoderConfig(**{**base, **kw})


def _qwen25(**kw):
  base = dict(vocab_size=152064, max_position_embeddings=131072, rope_theta=1000000.0, attention_bias=True,
              bos_token_id=151643, eos_token_ids=(151643,), model_type="qwen2")
  return DecoderConfig(**{**base, **kw})


# Real sizes, as in the base models' Hugging Face configs (meta-llama/Llama-3.2-1B, ..., Qwen/Qwen2.5-7B,
# mistralai/Mistral-7B-v0.3).
PRESETS = {
    "llama-3.2-1b": _llama3(hidden_size=2048, num_layers=16, num_heads=32, head_dim=64, intermediate_size=8192,
                            rope_factor=32.0, tie_word_embeddings=True),
    "llama-3.2-3b": _llama3(hidden_size=3072, num_layers=28, num_heads=24, head_dim=128, intermediate_size=8192,
                            rope_factor=32.0, tie_word_embeddings=True),
    "llama-3.1-8b": _llama3(hidden_size=4096, num_layers=32, num_heads=32, intermediate_size=14336),
    "llama-3.1-70b": _llama3(hidden_size=8192, num_layers=80, num_heads=64, intermediate_size=28672),
    "qwen2.5-7b": _qwen25(hidden_size=3584, num_layers=28, num_heads=28, num_kv_heads=4, intermediate_size=18944,
                          rms_norm_eps=1e-6),
    "qwen2.5-72b": _qwen25(hidden_size=8192, num_layers=80, num_heads=64, num_kv_heads=8, intermediate_size=29568,
                           rms_norm_eps=1e-5),
    "mistral-7b": DecoderConfig(vocab_size=32768, hidden_size=4096, num_layers=32, num_heads=32, num_kv_heads=8,
                                intermediate_size=14336, max_position_embeddings=32768, rms_norm_eps=1e-5,
                                rope_theta=1000000.0, bos_token_id=1, eos_token_ids=(2,), model_type="mistral"),
}


FAMILY = Family(
    name="decoder",
    config_cls=DecoderConfig,
    hf_model_types=tuple(_ARCH),
    build=Decoder,
    config_from_hf=config_from_hf,
    hf_config_from=hf_config_from,
    params_from_hf=params_from_hf,
    params_to_hf=params_to_hf,
    hf_architecture=hf_architecture,
    presets=PRESETS,
    tensor_plan=tensor_plan,
)
