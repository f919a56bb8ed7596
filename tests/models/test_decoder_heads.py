"""Task heads on a decoder-only LLM equal transformers' Llama heads (f32, left and right padding):
`LlamaForSequenceClassification` (last non-pad token), `LlamaForQuestionAnswering` and
`LlamaForTokenClassification`; multiple choice scores each choice's last token. The decoder runs per
layer and stacked (the pretrained per-layer weights relaid out by `build_model`)."""

import dataclasses

import numpy as np
import pytest
from decoder_fixtures import PROMPTS, tiny_decoder_folder
from flax import nnx

from xtjax.models.heads import HeadConfig
from xtjax.models.loading import load_pretrained
from xtjax.parallel.mesh import MeshConfig, make_mesh
from xtjax.parallel.rules import DEFAULT_RULES
from xtjax.train.setup import EncoderStart, build_model

HEADS = {"cls": HeadConfig("classification", 3), "qa": HeadConfig("span"), "pos": HeadConfig("tagging", 5),
         "mc": HeadConfig("multiple_choice")}
PAD = 0  # the fixture tokenizer's <pad>, never produced for text


@pytest.fixture(scope="module", params=[False, True], ids=["per-layer", "stacked"])
def models(tmp_path_factory, request):
  """(our TaskModel, tokenizer, transformers heads) with the heads' weights copied from transformers."""
  import torch
  import transformers as tf

  folder = tiny_decoder_folder(tmp_path_factory, "llama")
  mesh = make_mesh(MeshConfig(devices=1))
  pre = load_pretrained(str(folder), mesh=mesh, rules=DEFAULT_RULES)
  cfg = dataclasses.replace(pre.config, scan_layers=request.param)
  graphdef, params, _ = build_model(EncoderStart(pre.family, cfg, pre.params, pre.tokenizer, "test"), HEADS, 0,
                                    mesh, DEFAULT_RULES)
  assert ("stacked" in nnx.to_pure_dict(params)["encoder"]["layers"]) == request.param
  base = tf.LlamaForCausalLM.from_pretrained(str(folder)).model.state_dict()
  torch.manual_seed(0)
  hf = {}
  for name, cls, kw in (("cls", tf.LlamaForSequenceClassification, dict(num_labels=3)),
                        ("qa", tf.LlamaForQuestionAnswering, {}),
                        ("pos", tf.LlamaForTokenClassification, dict(num_labels=5))):
    cfg = tf.LlamaConfig.from_pretrained(str(folder), pad_token_id=PAD, attn_implementation="eager", **kw)
    model = cls(cfg).eval()
    getattr(model, model.base_model_prefix).load_state_dict(base)
    hf[name] = model
  pure = nnx.to_pure_dict(params)
  heads = pure["heads"]
  heads["cls"]["score"]["kernel"] = hf["cls"].score.weight.detach().numpy().T
  heads["qa"]["out"]["kernel"] = hf["qa"].qa_outputs.weight.detach().numpy().T
  heads["qa"]["out"]["bias"] = hf["qa"].qa_outputs.bias.detach().numpy()
  heads["pos"]["out"]["kernel"] = hf["pos"].score.weight.detach().numpy().T
  heads["pos"]["out"]["bias"] = hf["pos"].score.bias.detach().numpy()
  nnx.replace_by_pure_dict(params, pure)
  return nnx.merge(graphdef, params), pre.tokenizer, hf


def _batch(tok, side: str):
  tok.padding_side = side
  enc = tok(PROMPTS, padding=True, return_tensors="np")
  assert (enc["attention_mask"] == 0).any() and not (enc["input_ids"][enc["attention_mask"] > 0] == PAD).any()
  return {"input_ids": enc["input_ids"].astype(np.int32), "attention_mask": enc["attention_mask"].astype(np.int32)}


def _hf(model, batch):
  """transformers' outputs with positions counting real tokens (as `generate` makes them for left padding)."""
  import torch

  mask = torch.tensor(batch["attention_mask"], dtype=torch.long)
  with torch.no_grad():
    return model(input_ids=torch.tensor(batch["input_ids"], dtype=torch.long), attention_mask=mask,
                 position_ids=(mask.cumsum(-1) - 1).clamp(min=0))


@pytest.mark.parametrize("side", ["left", "right"])
def test_heads_equal_transformers_llama_heads(models, side):
  model, tok, hf = models
  batch = _batch(tok, side)
  real = batch["attention_mask"] > 0
  np.testing.assert_allclose(np.asarray(model.eval_outputs("cls", batch)), _hf(hf["cls"], batch).logits.numpy(),
                             rtol=1e-4, atol=1e-5)
  start, end = model.eval_outputs("qa", batch)
  out = _hf(hf["qa"], batch)
  np.testing.assert_allclose(np.asarray(start)[real], out.start_logits.numpy()[real], rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(np.asarray(end)[real], out.end_logits.numpy()[real], rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(np.asarray(model.eval_outputs("pos", batch))[real], _hf(hf["pos"], batch).logits.numpy()[real],
                             rtol=1e-4, atol=1e-5)


def test_multiple_choice_scores_each_choice_on_its_last_token(models):
  """[B, C, L] choices: each choice's logit is the classification score of its own last real token,
  whichever side pads, and padding rows never leak into real ones."""
  model, tok, _ = models
  left, right = _batch(tok, "left"), _batch(tok, "right")
  choices = {k: v[:4].reshape(2, 2, -1) for k, v in left.items()}
  flat = np.asarray(model.eval_outputs("mc", {k: v[:4] for k, v in left.items()}))
  mc = np.asarray(model.eval_outputs("mc", choices))
  assert mc.shape == (2, 2)
  np.testing.assert_allclose(mc.reshape(-1), flat, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(model.eval_outputs("mc", right)), np.asarray(model.eval_outputs("mc", left)),
                             rtol=1e-4, atol=1e-5)


def test_retrieval_embeddings_are_mean_pooled_decoder_hidden_states(tmp_path_factory):
  """`embed_sentences` on a decoder: hidden_states[layer] of transformers' LlamaModel, averaged over
  each sentence's tokens (the retrieval tasks' pooling)."""
  import torch
  import transformers as tf

  from xtjax.models.embed import embed_sentences

  folder = tiny_decoder_folder(tmp_path_factory, "llama")
  pre = load_pretrained(str(folder))
  ours, stats = embed_sentences(pre, PROMPTS, layer=1, pooling="mean", batch_size=2, max_length=64)
  assert stats.truncated == 0
  enc = pre.tokenizer(PROMPTS, padding=True, return_tensors="pt")
  with torch.no_grad():
    hidden = tf.LlamaModel.from_pretrained(str(folder)).eval()(
        **enc, position_ids=(enc["attention_mask"].cumsum(-1) - 1).clamp(min=0), output_hidden_states=True
    ).hidden_states[1]
  mask = enc["attention_mask"][..., None].float()
  np.testing.assert_allclose(ours, ((hidden * mask).sum(1) / mask.sum(1)).numpy(), rtol=1e-4, atol=1e-5)


def test_a_tokenizer_without_padding_pads_with_its_eos(tmp_path, caplog):
  """Llama 3.x tokenizers define no padding token: loading gives them their EOS as one, in the log."""
  import logging

  from decoder_fixtures import make_decoder_tokenizer

  from xtjax.models import hf_io

  tok = make_decoder_tokenizer()
  tok.pad_token = None
  tok.save_pretrained(str(tmp_path))
  with caplog.at_level(logging.INFO, logger="xtjax.models.hf_io"):
    loaded = hf_io.load_tokenizer(tmp_path)
  assert loaded.pad_token == "</s>" and loaded.pad_token_id == loaded.eos_token_id == 2
  assert "no padding token; padding with its EOS '</s>'" in caplog.text


def test_masked_lm_heads_have_no_decoder_form():
  from xtjax.models.heads import Head

  with pytest.raises(ValueError, match="head type 'mlm' is not defined on decoder-only"):
    Head(HeadConfig("mlm"), 8, causal=True, rngs=nnx.Rngs(0), vocab_size=16)
