"""T5 / mT5 / umT5: Hugging Face config and strict tensor mapping for `t5.T5`, and the real-size presets.

Tying: transformers >= 5 writes `tie_word_embeddings: true` into every T5-family config.json
(T5 keeps the real choice in `scale_decoder_outputs`), so a checkpoint's tensors decide: an mT5 /
umT5 checkpoint with an `lm_head.weight` is untied. The embedding copies `encoder.embed_tokens` /
`decoder.embed_tokens` (and a tied `lm_head`) are ignored when present, after checking that they
really equal `shared.weight`.

What umT5 means here: the untied LM head applied to the decoder output without rescaling, as the
original umT5 checkpoints and T5X (`logits_via_embedding=False`) compute it. transformers 4.x and
>= 5.24 agree; 5.0-5.23 rescaled by d_model**-0.5 (tests/models/test_t5_parity.py checks both).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from xtjax.errors import CheckpointError
from xtjax.models import hf_mapping as M
from xtjax.models.family import Family
from xtjax.models.scan import to_per_layer
from xtjax.models.t5 import T5, T5Config

_ARCH = {"t5": "T5", "mt5": "MT5", "umt5": "UMT5"}
_DEFAULT_FFN = {"t5": "relu", "mt5": "gated-gelu", "umt5": "gated-gelu"}
_EMBED_COPIES = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")
# transformers never loads this one (it has `_keys_to_ignore_on_load_unexpected` for it).
_IGNORE = (r"encoder\.embed_tokens\.weight", r"decoder\.embed_tokens\.weight",
           r"decoder\.block\.0\.layer\.1\.EncDecAttention\.relative_attention_bias\.weight")


def config_from_hf(hf: Mapping[str, Any]) -> T5Config:
  mt = hf.get("model_type")
  tie = hf.get("tie_word_embeddings", True)
  if mt == "t5" and "scale_decoder_outputs" in hf:  # transformers >= 5 keeps T5's real choice here
    tie = bool(hf["scale_decoder_outputs"])
  eos = hf.get("eos_token_id", 1)
  pad = hf.get("pad_token_id")
  pad = 0 if pad is None else pad
  start = hf.get("decoder_start_token_id")
  with M.hf_config_errors(mt):
    return T5Config(
        vocab_size=hf["vocab_size"],
        d_model=hf["d_model"],
        d_kv=hf["d_kv"],
        d_ff=hf["d_ff"],
        num_layers=hf["num_layers"],
        num_decoder_layers=hf.get("num_decoder_layers") or hf["num_layers"],
        num_heads=hf["num_heads"],
        relative_attention_num_buckets=hf.get("relative_attention_num_buckets", 32),
        relative_attention_max_distance=hf.get("relative_attention_max_distance", 128),
        layer_norm_epsilon=hf.get("layer_norm_epsilon", 1e-6),
        feed_forward_proj=hf.get("feed_forward_proj", _DEFAULT_FFN.get(mt, "relu")),
        tie_word_embeddings=bool(tie),
        dropout_rate=hf.get("dropout_rate", 0.1),
        pad_token_id=pad,
        eos_token_id=(eos[0] if isinstance(eos, list) else eos) if eos is not None else 1,
        decoder_start_token_id=pad if start is None else start,
        per_layer_position_bias=(mt == "umt5"),
        initializer_factor=hf.get("initializer_factor", 1.0),
        model_type=mt,
    )


def hf_config_from(cfg: T5Config) -> dict:
  return dict(
      model_type=cfg.model_type,
      vocab_size=cfg.vocab_size,
      d_model=cfg.d_model,
      d_kv=cfg.d_kv,
      d_ff=cfg.d_ff,
      num_layers=cfg.num_layers,
      num_decoder_layers=cfg.num_decoder_layers,
      num_heads=cfg.num_heads,
      relative_attention_num_buckets=cfg.relative_attention_num_buckets,
      relative_attention_max_distance=cfg.relative_attention_max_distance,
      layer_norm_epsilon=cfg.layer_norm_epsilon,
      feed_forward_proj=cfg.feed_forward_proj,
      tie_word_embeddings=cfg.tie_word_embeddings,
      dropout_rate=cfg.dropout_rate,
      initializer_factor=cfg.initializer_factor,
      pad_token_id=cfg.pad_token_id,
      eos_token_id=cfg.eos_token_id,
      decoder_start_token_id=cfg.decoder_start_token_id,
      is_encoder_decoder=True,
      use_cache=True,
  )


def _attention_rules(cfg: T5Config, us: tuple, hf: str, relative_bias: bool) -> list[M.Rule]:
  D, H, K = cfg.d_model, cfg.num_heads, cfg.d_kv
  r = [M.Rule(us + (name,), hf + f"{name}.weight", (D, H, K), (H * K, D),
              lambda w: w.T.reshape(D, H, K), lambda k: k.reshape(D, -1).T) for name in ("q", "k", "v")]
  r.append(M.Rule(us + ("o",), hf + "o.weight", (H, K, D), (D, H * K),
                  lambda w: w.T.reshape(H, K, D), lambda o: o.reshape(-1, D).T))
  if relative_bias:
    r.append(M.copy(us + ("relative_attention_bias",), hf + "relative_attention_bias.weight",
                    (cfg.relative_attention_num_buckets, H)))
  return r


def _ffn_rules(cfg: T5Config, layer: tuple, hf: str) -> list[M.Rule]:
  D, F = cfg.d_model, cfg.d_ff
  names = ("wi_0", "wi_1") if cfg.is_gated else ("wi",)
  r = [M.linear(layer + ("ffn", name), hf + f"DenseReluDense.{name}.weight", D, F) for name in names]
  r.append(M.linear(layer + ("ffn", "wo"), hf + "DenseReluDense.wo.weight", F, D))
  r.append(M.copy(layer + ("ffn_norm", "scale"), hf + "layer_norm.weight", (D,)))
  return r


def _rules(cfg: T5Config) -> list[M.Rule]:
  D = cfg.d_model
  r = [M.copy(("shared",), "shared.weight", (cfg.vocab_size, D))]
  stacks = [("encoder", cfg.num_layers)] + ([] if cfg.encoder_only else [("decoder", cfg.num_decoder_layers)])
  for stack, n in stacks:
    for i in range(n):
      hf, us = f"{stack}.block.{i}.", (stack, "layers", i)
      bias = i == 0 or cfg.per_layer_position_bias
      if stack == "encoder":
        r += _attention_rules(cfg, us + ("attention",), hf + "layer.0.SelfAttention.", bias)
        r.append(M.copy(us + ("attention_norm", "scale"), hf + "layer.0.layer_norm.weight", (D,)))
        r += _ffn_rules(cfg, us, hf + "layer.1.")
      else:
        r += _attention_rules(cfg, us + ("self_attention",), hf + "layer.0.SelfAttention.", bias)
        r.append(M.copy(us + ("self_attention_norm", "scale"), hf + "layer.0.layer_norm.weight", (D,)))
        r += _attention_rules(cfg, us + ("cross_attention",), hf + "layer.1.EncDecAttention.", False)
        r.append(M.copy(us + ("cross_attention_norm", "scale"), hf + "layer.1.layer_norm.weight", (D,)))
        r += _ffn_rules(cfg, us, hf + "layer.2.")
    r.append(M.copy((stack, "final_norm", "scale"), f"{stack}.final_layer_norm.weight", (D,)))
  if not cfg.encoder_only and not cfg.tie_word_embeddings:
    r.append(M.linear(("lm_head",), "lm_head.weight", D, cfg.vocab_size))
  return r


def _check_copies(cfg: T5Config, tensors: Mapping[str, np.ndarray], where: str) -> None:
  """Ignored embedding copies must be copies: anything else would be silently dropped weights."""
  copies = list(_EMBED_COPIES) + (["lm_head.weight"] if cfg.tie_word_embeddings and not cfg.encoder_only else [])
  shared = tensors.get("shared.weight")
  for name in copies:
    if name in tensors and shared is not None and not np.array_equal(np.asarray(tensors[name]), np.asarray(shared)):
      hint = (" (the config ties the LM head to the embedding: set tie_word_embeddings to false in config.json)"
              if name == "lm_head.weight" else "")
      raise CheckpointError(f"{where}: tensor {name!r} differs from 'shared.weight' but T5 ties them{hint}")


def params_from_hf(cfg: T5Config, tensors, where: str = "checkpoint"):
  """Our parameters in the per-layer layout (`models.init.place` stacks them when the config scans)."""
  tensors = M.strip_prefix(tensors, "shared.weight", ("transformer.", "model."), where)
  ignore = list(_IGNORE)
  if cfg.tie_word_embeddings:
    ignore.append(r"lm_head\.weight")
  if cfg.encoder_only:
    ignore += [r"decoder\..*", r"lm_head\.weight"]
  _check_copies(cfg, tensors, where)
  return M.import_tensors(_rules(cfg), tensors, ignore, where)


def params_to_hf(cfg: T5Config, params) -> dict:
  return M.export_tensors(_rules(cfg), to_per_layer(params))


def hf_architecture(cfg: T5Config) -> str:
  return _ARCH[cfg.model_type] + ("EncoderModel" if cfg.encoder_only else "ForConditionalGeneration")


def config_for_tensors(cfg: T5Config, names) -> T5Config:
  names = set(names)
  stripped = {n.split(".", 1)[1] if n.startswith(("transformer.", "model.")) else n for n in names}
  encoder_only = not any(n.startswith("decoder.") for n in stripped)
  tie = cfg.tie_word_embeddings
  if cfg.model_type != "t5" and "lm_head.weight" in stripped:
    tie = False  # transformers >= 5 writes tie_word_embeddings=true for every mT5 / umT5
  return dataclasses.replace(cfg, encoder_only=encoder_only, tie_word_embeddings=tie)


def _mt5(**kw):
  return T5Config(**{**dict(vocab_size=250112, d_kv=64, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                            model_type="mt5"), **kw})


def _t5_v1_1(**kw):
  return T5Config(**{**dict(vocab_size=32128, d_kv=64, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                            model_type="t5"), **kw})


# Sizes of google/mt5-* and google/t5-v1_1-* (the same architectures; only the vocabulary differs).
_SIZES = {
    "small": dict(d_model=512, d_ff=1024, num_heads=6, num_layers=8, num_decoder_layers=8),
    "base": dict(d_model=768, d_ff=2048, num_heads=12, num_layers=12, num_decoder_layers=12),
    "large": dict(d_model=1024, d_ff=2816, num_heads=16, num_layers=24, num_decoder_layers=24),
    "xl": dict(d_model=2048, d_ff=5120, num_heads=32, num_layers=24, num_decoder_layers=24),
    "xxl": dict(d_model=4096, d_ff=10240, num_heads=64, num_layers=24, num_decoder_layers=24),
}
PRESETS = {f"mt5-{s}": _mt5(**kw) for s, kw in _SIZES.items()}
PRESETS.update({f"t5-v1_1-{s}": _t5_v1_1(**kw) for s, kw in _SIZES.items()})


FAMILY = Family(
    name="t5",
    config_cls=T5Config,
    hf_model_types=("t5", "mt5", "umt5"),
    build=T5,
    config_from_hf=config_from_hf,
    hf_config_from=hf_config_from,
    params_from_hf=params_from_hf,
    params_to_hf=params_to_hf,
    hf_architecture=hf_architecture,
    config_for_tensors=config_for_tensors,
    presets=PRESETS,
)
