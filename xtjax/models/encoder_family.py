"""BERT / mBERT / RoBERTa / XLM-R: Hugging Face config and tensor mapping for `encoder.Encoder`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from xtjax.errors import CheckpointError
from xtjax.models import hf_mapping as M
from xtjax.models.family import Family
from xtjax.models.encoder import Encoder, EncoderConfig
from xtjax.models.scan import to_per_layer

_ROBERTA_TYPES = ("roberta", "xlm-roberta", "camembert")
_PREFIXES = ("bert.", "roberta.", "xlm_roberta.", "model.", "encoder_model.")
# Pre-training heads and buffers that a base encoder deliberately does not use.
_IGNORE = (r"cls\..*", r"lm_head\..*", r"embeddings\.position_ids", r"qa_outputs\..*", r"classifier\..*")


def config_from_hf(hf: Mapping[str, Any]) -> EncoderConfig:
  mt = hf.get("model_type")
  if hf.get("position_embedding_type", "absolute") != "absolute":
    raise CheckpointError(f"config.json: position_embedding_type {hf['position_embedding_type']!r} "
                          "is not supported (only 'absolute')")
  with M.hf_config_errors(mt):
    return EncoderConfig(
        vocab_size=hf["vocab_size"],
        hidden_size=hf["hidden_size"],
        num_layers=hf["num_hidden_layers"],
        num_heads=hf["num_attention_heads"],
        intermediate_size=hf["intermediate_size"],
        max_position_embeddings=hf["max_position_embeddings"],
        type_vocab_size=hf.get("type_vocab_size", 2),
        layer_norm_eps=hf.get("layer_norm_eps", 1e-12),
        hidden_act=hf.get("hidden_act", "gelu"),
        pad_token_id=hf.get("pad_token_id") if hf.get("pad_token_id") is not None else 0,
        position_style="roberta" if mt in _ROBERTA_TYPES else "absolute",
        dropout_rate=hf.get("hidden_dropout_prob", 0.1),
        attention_dropout_rate=hf.get("attention_probs_dropout_prob", 0.1),
        initializer_range=hf.get("initializer_range", 0.02),
        model_type=mt,
    )


def hf_config_from(cfg: EncoderConfig) -> dict:
  d = dict(
      model_type=cfg.model_type,
      vocab_size=cfg.vocab_size,
      hidden_size=cfg.hidden_size,
      num_hidden_layers=cfg.num_layers,
      num_attention_heads=cfg.num_heads,
      intermediate_size=cfg.intermediate_size,
      max_position_embeddings=cfg.max_position_embeddings,
      type_vocab_size=max(cfg.type_vocab_size, 1),
      layer_norm_eps=cfg.layer_norm_eps,
      hidden_act=cfg.hidden_act,
      pad_token_id=cfg.pad_token_id,
      hidden_dropout_prob=cfg.dropout_rate,
      attention_probs_dropout_prob=cfg.attention_dropout_rate,
      initializer_range=cfg.initializer_range,
      position_embedding_type="absolute",
  )
  if cfg.position_style == "roberta":
    d.update(bos_token_id=0, eos_token_id=2)
  return d


def _rules(cfg: EncoderConfig) -> list[M.Rule]:
  D, H, K, F = cfg.hidden_size, cfg.num_heads, cfg.head_dim, cfg.intermediate_size
  r = [
      M.copy(("embeddings", "word"), "embeddings.word_embeddings.weight", (cfg.vocab_size, D)),
      M.copy(("embeddings", "position"), "embeddings.position_embeddings.weight", (cfg.max_position_embeddings, D)),
      M.copy(("embeddings", "norm", "scale"), "embeddings.LayerNorm.weight", (D,)),
      M.copy(("embeddings", "norm", "bias"), "embeddings.LayerNorm.bias", (D,)),
  ]
  if cfg.type_vocab_size > 0:
    r.append(M.copy(("embeddings", "token_type"), "embeddings.token_type_embeddings.weight", (cfg.type_vocab_size, D)))
  for i in range(cfg.num_layers):
    hf, us = f"encoder.layer.{i}.", ("layers", i)
    for name in ("query", "key", "value"):
      r.append(M.Rule(us + ("attention", name), hf + f"attention.self.{name}.weight", (D, H, K), (H * K, D),
                      lambda w, D=D, H=H, K=K: w.T.reshape(D, H, K), lambda k, D=D: k.reshape(D, -1).T))
      r.append(M.Rule(us + ("attention", name + "_bias"), hf + f"attention.self.{name}.bias", (H, K), (H * K,),
                      lambda b, H=H, K=K: b.reshape(H, K), lambda b: b.reshape(-1)))
    r += [
        M.Rule(us + ("attention", "out"), hf + "attention.output.dense.weight", (H, K, D), (D, H * K),
               lambda w, D=D, H=H, K=K: w.T.reshape(H, K, D), lambda k, D=D: k.reshape(-1, D).T),
        M.copy(us + ("attention", "out_bias"), hf + "attention.output.dense.bias", (D,)),
        M.copy(us + ("attention_norm", "scale"), hf + "attention.output.LayerNorm.weight", (D,)),
        M.copy(us + ("attention_norm", "bias"), hf + "attention.output.LayerNorm.bias", (D,)),
        M.linear(us + ("intermediate", "kernel"), hf + "intermediate.dense.weight", D, F),
        M.copy(us + ("intermediate", "bias"), hf + "intermediate.dense.bias", (F,)),
        M.linear(us + ("output", "kernel"), hf + "output.dense.weight", F, D),
        M.copy(us + ("output", "bias"), hf + "output.dense.bias", (D,)),
        M.copy(us + ("output_norm", "scale"), hf + "output.LayerNorm.weight", (D,)),
        M.copy(us + ("output_norm", "bias"), hf + "output.LayerNorm.bias", (D,)),
    ]
  if cfg.pooler:
    r += [M.linear(("pooler", "kernel"), "pooler.dense.weight", D, D), M.copy(("pooler", "bias"), "pooler.dense.bias", (D,))]
  return r


def _rename_legacy(tensors):
  # Old TF-converted BERT checkpoints name layer-norm parameters gamma/beta.
  return {k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias"): v
          for k, v in tensors.items()}


def params_from_hf(cfg: EncoderConfig, tensors, where: str = "checkpoint"):
  """Our parameters in the per-layer layout (`models.init.place` stacks them when the config scans)."""
  tensors = M.strip_prefix(_rename_legacy(tensors), "embeddings.word_embeddings.weight", _PREFIXES, where)
  ignore = list(_IGNORE) + ([] if cfg.pooler else [r"pooler\..*"])
  return M.import_tensors(_rules(cfg), tensors, ignore, where)


def params_to_hf(cfg: EncoderConfig, params) -> dict:
  return M.export_tensors(_rules(cfg), to_per_layer(params))


def hf_architecture(cfg: EncoderConfig) -> str:
  return {"bert": "BertModel", "roberta": "RobertaModel", "xlm-roberta": "XLMRobertaModel",
          "camembert": "CamembertModel"}.get(cfg.model_type, "BertModel")


def config_for_tensors(cfg: EncoderConfig, names) -> EncoderConfig:
  has_pooler = any(n.endswith("pooler.dense.weight") for n in names)
  return dataclasses.replace(cfg, pooler=has_pooler)


def _xlmr(**kw):
  base = dict(vocab_size=250002, max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5,
              pad_token_id=1, position_style="roberta", model_type="xlm-roberta")
  return EncoderConfig(**{**base, **kw})


def _roberta(**kw):
  base = dict(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5,
              pad_token_id=1, position_style="roberta", model_type="roberta")
  return EncoderConfig(**{**base, **kw})


_LARGE = dict(hidden_size=1024, num_layers=24, num_heads=16, intermediate_size=4096)
# Real sizes, as in the Hugging Face configs (base models with pooler, as AutoModel builds them).
PRESETS = {
    "xlmr-base": _xlmr(),
    "xlmr-large": _xlmr(**_LARGE),
    "mbert-base": EncoderConfig(vocab_size=119547, model_type="bert"),
    "bert-base": EncoderConfig(vocab_size=30522, model_type="bert"),
    "bert-large": EncoderConfig(vocab_size=30522, model_type="bert", **_LARGE),
    "roberta-base": _roberta(),
    "roberta-large": _roberta(**_LARGE),
    # Benchmark preset: XLM-R architecture, 4 layers, hidden 256, 4 heads, FFN 1024, vocab 32000.
    "xlmr-bench-small": _xlmr(vocab_size=32000, hidden_size=256, num_layers=4, num_heads=4, intermediate_size=1024),
}


FAMILY = Family(
    name="encoder",
    config_cls=EncoderConfig,
    hf_model_types=("bert", "roberta", "xlm-roberta", "camembert"),
    build=Encoder,
    config_from_hf=config_from_hf,
    hf_config_from=hf_config_from,
    params_from_hf=params_from_hf,
    params_to_hf=params_to_hf,
    hf_architecture=hf_architecture,
    config_for_tensors=config_for_tensors,
    presets=PRESETS,
)
