"""T5-family registration: strict tensor mapping, export to transformers, presets of the real sizes."""

import dataclasses
import json

import jax
import numpy as np
import pytest
from fixtures import flat_paths as _flat
from flax import nnx
from t5_fixtures import PROMPTS, hf_model, tiny_t5_folder

from xtjax.errors import CheckpointError
from xtjax.models import hf_io, registry, store
from xtjax.models import init as model_init
from xtjax.models.loading import export_hf, load_pretrained

# Parameter counts of the transformers models (untied LM head), as published for google/mt5-*.
MT5_PARAMS = {"mt5-small": 300_176_768, "mt5-base": 582_401_280, "mt5-large": 1_229_581_312,
              "mt5-xl": 3_742_619_648, "mt5-xxl": 12_921_057_280}


def _pure(pre):
  return jax.tree.map(np.asarray, nnx.to_pure_dict(pre.params))


def _torch_logits(model, tokenizer):
  import torch

  enc = {k: torch.tensor(v) for k, v in tokenizer(PROMPTS, padding=True, return_tensors="np").items()}
  with torch.no_grad():
    return model(**enc, decoder_input_ids=torch.tensor([[0, 5, 9, 7]] * len(PROMPTS))).logits.numpy()


@pytest.mark.parametrize("kind", ["mt5", "t5"])
def test_export_round_trip(tmp_path_factory, tmp_path, kind):
  folder = tiny_t5_folder(tmp_path_factory, kind)
  pre = load_pretrained(folder)
  out = export_hf(pre, tmp_path / "exported")
  hf_cfg = json.loads((out / "config.json").read_text())
  assert hf_cfg["architectures"] == [{"mt5": "MT5ForConditionalGeneration", "t5": "T5ForConditionalGeneration"}[kind]]
  import transformers as tf

  _, info = getattr(tf, hf_cfg["architectures"][0]).from_pretrained(str(out), output_loading_info=True)
  assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
  np.testing.assert_array_equal(_torch_logits(hf_model(out, kind), pre.tokenizer),
                                _torch_logits(hf_model(folder, kind), pre.tokenizer))
  again = load_pretrained(out)
  assert again.config == pre.config
  a, b = _flat(_pure(pre)), _flat(_pure(again))
  assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_xtjax_model_folder_round_trip(tmp_path_factory, tmp_path):
  pre = load_pretrained(tiny_t5_folder(tmp_path_factory, "mt5"))
  store.save(tmp_path / "m", pre.family, pre.config, pre.params, pre.tokenizer)
  again = load_pretrained(tmp_path / "m")
  assert again.family.name == "t5" and again.config == pre.config and again.tokenizer is not None
  a, b = _flat(_pure(pre)), _flat(_pure(again))
  assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _tensors_and_config(folder):
  fam = registry.get("t5")
  tensors = hf_io.read_tensors(folder)
  cfg = fam.config_for_tensors(fam.config_from_hf(hf_io.read_config(folder)), list(tensors))
  return fam, cfg, tensors


def test_strict_mapping_names_the_tensor(tmp_path_factory):
  fam, cfg, tensors = _tensors_and_config(tiny_t5_folder(tmp_path_factory, "mt5"))
  params, ignored = fam.params_from_hf(cfg, tensors)
  assert ignored == [] and params["lm_head"].shape == (cfg.d_model, cfg.vocab_size)
  assert params["decoder"]["layers"][0]["self_attention"]["q"].shape == (cfg.d_model, cfg.num_heads, cfg.d_kv)
  assert "relative_attention_bias" not in params["encoder"]["layers"][1]["attention"]

  name = "decoder.block.1.layer.1.EncDecAttention.k.weight"
  with pytest.raises(CheckpointError, match=f"missing tensor '{name}'"):
    fam.params_from_hf(cfg, {k: v for k, v in tensors.items() if k != name})
  name = "encoder.block.0.layer.1.DenseReluDense.wi_1.weight"
  with pytest.raises(CheckpointError, match=rf"tensor '{name}' has shape \[36, 32\], expected \[37, 32\]"):
    fam.params_from_hf(cfg, {**tensors, name: tensors[name][:-1]})
  with pytest.raises(CheckpointError, match="unexpected tensors.*encoder.block.1.layer.0.SelfAttention.relative"):
    fam.params_from_hf(cfg, {**tensors, "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight":
                             tensors["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]})
  # The embedding copies are ignored only when they are copies.
  shared = tensors["shared.weight"]
  _, ignored = fam.params_from_hf(cfg, {**tensors, "encoder.embed_tokens.weight": shared.copy()})
  assert ignored == ["encoder.embed_tokens.weight"]
  with pytest.raises(CheckpointError, match="'decoder.embed_tokens.weight' differs from 'shared.weight'"):
    fam.params_from_hf(cfg, {**tensors, "decoder.embed_tokens.weight": shared + 1})


def test_tied_t5_and_umt5_mapping(tmp_path_factory):
  fam, cfg, tensors = _tensors_and_config(tiny_t5_folder(tmp_path_factory, "t5"))
  assert cfg.tie_word_embeddings and not cfg.is_gated and "lm_head.weight" not in tensors
  params, _ = fam.params_from_hf(cfg, tensors)
  assert "lm_head" not in params and "wi" in params["encoder"]["layers"][0]["ffn"]
  _, ignored = fam.params_from_hf(cfg, {**tensors, "lm_head.weight": tensors["shared.weight"]})
  assert ignored == ["lm_head.weight"]
  with pytest.raises(CheckpointError, match="'lm_head.weight' differs .* set tie_word_embeddings to false"):
    fam.params_from_hf(cfg, {**tensors, "lm_head.weight": tensors["shared.weight"] * 2})

  fam, cfg, tensors = _tensors_and_config(tiny_t5_folder(tmp_path_factory, "umt5"))
  assert cfg.per_layer_position_bias and not cfg.tie_word_embeddings
  params, _ = fam.params_from_hf(cfg, tensors)
  for stack, attn in (("encoder", "attention"), ("decoder", "self_attention")):
    assert all(layer[attn]["relative_attention_bias"].shape == (8, 4) for layer in params[stack]["layers"].values())


def test_encoder_only_checkpoint(tmp_path_factory, tmp_path):
  """An MT5EncoderModel folder loads as an encoder-only T5 and exports back to one."""
  import transformers as tf

  folder = tiny_t5_folder(tmp_path_factory, "mt5")
  full = load_pretrained(folder)
  tensors = {k: v for k, v in hf_io.read_tensors(folder).items() if k.startswith(("shared.", "encoder."))}
  hf_cfg = {**hf_io.read_config(folder), "architectures": ["MT5EncoderModel"]}
  hf_io.write_folder(tmp_path / "enc", hf_cfg, tensors, folder)
  pre = load_pretrained(tmp_path / "enc")
  assert pre.config.encoder_only and pre.family.hf_architecture(pre.config) == "MT5EncoderModel"
  enc_params = _flat(_pure(pre))
  full_params = _flat(_pure(full))
  assert set(enc_params) == {k for k in full_params if k.startswith(("shared", "encoder/"))}
  assert all(np.array_equal(v, full_params[k]) for k, v in enc_params.items())
  with pytest.raises(ValueError, match="encoder_only"):
    pre.model().init_cache(np.zeros((1, 2, 32), np.float32), 4)
  out = export_hf(pre, tmp_path / "exported")
  _, info = tf.MT5EncoderModel.from_pretrained(str(out), output_loading_info=True)
  assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]


def test_config_round_trip_and_hf_config_classes():
  import transformers as tf

  fam = registry.get("t5")
  for name in ("mt5-small", "t5-v1_1-base"):
    cfg = fam.presets[name]
    assert fam.config_from_hf(fam.hf_config_from(cfg)) == cfg
  cfg = dataclasses.replace(fam.presets["mt5-small"], model_type="umt5", per_layer_position_bias=True)
  assert fam.config_from_hf(fam.hf_config_from(cfg)) == cfg
  t5 = fam.config_from_hf(tf.T5Config().to_dict())  # T5 v1.0 defaults: ReLU, tied
  assert t5.feed_forward_proj == "relu" and t5.tie_word_embeddings and t5.vocab_size == 32128
  with pytest.raises(CheckpointError, match="missing key 'd_kv'"):
    fam.config_from_hf({"model_type": "mt5", "vocab_size": 10, "d_model": 8, "d_ff": 8, "num_layers": 1,
                        "num_heads": 1})
  with pytest.raises(CheckpointError, match="feed_forward_proj"):
    fam.config_from_hf({**fam.hf_config_from(fam.presets["mt5-small"]), "feed_forward_proj": "gated-relu-x"})


def _hf_param_count(fam, cfg) -> int:
  """Parameters of the transformers model built on the meta device (allocates nothing); the embedding
  copies inside the encoder and decoder stacks are the shared embedding and are not counted."""
  import torch
  import transformers as tf

  prefix = {"t5": "T5", "mt5": "MT5", "umt5": "UMT5"}[cfg.model_type]
  hf_cfg = getattr(tf, f"{prefix}Config")(**fam.hf_config_from(cfg))
  with torch.device("meta"):
    model = getattr(tf, f"{prefix}ForConditionalGeneration")(hf_cfg)
  # remove_duplicate=False: transformers >= 5 ties the head to the embedding when built from a config,
  # but the checkpoints (and our model) keep a separate LM head.
  return sum(p.numel() for n, p in model.named_parameters(remove_duplicate=False)
             if not n.endswith("embed_tokens.weight"))


@pytest.mark.parametrize("size", ["small", "base", "large", "xl", "xxl"])
def test_preset_parameter_counts_match_transformers(size):
  fam = registry.get("t5")
  for name in (f"mt5-{size}", f"t5-v1_1-{size}"):
    cfg = fam.presets[name]
    _, state = model_init.abstract(fam, cfg)
    ours = model_init.count_params(state)
    assert ours == _hf_param_count(fam, cfg), name
    if name in MT5_PARAMS:
      assert ours == MT5_PARAMS[name]
