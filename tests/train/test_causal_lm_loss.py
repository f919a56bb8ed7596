"""Causal-LM text-to-text on a decoder-only model: the loss and every gradient equal transformers'
`LlamaForCausalLM(labels=...)` on `prompt + target` with the prompt labelled -100 (f32, left- and
right-padded prompts, a padding row, a truncated target; layers per layer or stacked), and micro-batches and
devices change nothing."""

import jax
import numpy as np
import pytest
from decoder_fixtures import PROMPTS, hf_model, tiny_decoder_folder
from flax import nnx
from test_t2t_loss import _pad_rows, _xtjax_step

from xtjax.models import decoder_family
from xtjax.models.loading import load_pretrained
from xtjax.models.scan import to_per_layer
from xtjax.parallel.mesh import MeshConfig
from xtjax.tasks.text_to_text import encode_pairs
from xtjax.train.optim import path_str

TARGETS = ["Hund lazy fox", "the", "world tiny corpus words and more", "x quick brown"]


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
  return tiny_decoder_folder(tmp_path_factory, "llama")


def _batch(folder, side: str):
  tok = load_pretrained(str(folder)).tokenizer
  tok.padding_side = side
  arrays, stats = encode_pairs(list(zip(PROMPTS[:4], TARGETS)), tok, input_length=24, target_length=6)
  assert stats["truncated_targets"] >= 1 and (arrays["labels"] == -100).any() and (arrays["attention_mask"] == 0).any()
  first = arrays["input_ids"][np.arange(4), np.argmax(arrays["attention_mask"], 1)]
  assert (first == tok.bos_token_id).all() and not (arrays["labels"] == tok.bos_token_id).any()  # BOS: prompts only
  arrays = {k: np.concatenate([v, v[:1]]) for k, v in arrays.items()}  # a padding row that must change nothing
  arrays["example_mask"] = np.array([1, 1, 1, 1, 0], np.int32)
  return arrays


def _hf_loss_and_grads(folder, arrays):
  """transformers on each real row's unpadded `prompt + target`, right-padded into one batch."""
  import torch

  rows = []
  for ids, mask, labels, real in zip(arrays["input_ids"], arrays["attention_mask"], arrays["labels"],
                                     arrays["example_mask"]):
    if real:
      prompt, target = ids[mask > 0].tolist(), labels[labels != -100].tolist()
      rows.append((prompt + target, [-100] * len(prompt) + target))
  width = max(len(seq) for seq, _ in rows)
  ids = torch.tensor([seq + [0] * (width - len(seq)) for seq, _ in rows])
  mask = torch.tensor([[1] * len(seq) + [0] * (width - len(seq)) for seq, _ in rows])
  labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in rows])
  model = hf_model(folder, "llama")
  out = model(input_ids=ids, attention_mask=mask, labels=labels)
  out.loss.backward()
  return float(out.loss.detach()), {n: p.grad.numpy() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("side,accum", [("left", 1), ("right", 2)])
def test_loss_and_every_gradient_equal_transformers(llama, side, accum, layer_layout):
  arrays = _pad_rows(_batch(llama, side), 2)
  hf_loss, hf_grads = _hf_loss_and_grads(llama, arrays)
  loss, grads, cfg = _xtjax_step(llama, arrays, accum, MeshConfig(devices=1))
  np.testing.assert_allclose(loss, hf_loss, rtol=1e-5)
  expected, _ = decoder_family.params_from_hf(cfg, hf_grads, "torch grads")
  encoder = nnx.to_pure_dict(grads["encoder"])
  assert ("stacked" in encoder["layers"]) == (layer_layout == "stacked")
  ours = {path_str(p): np.asarray(g) for p, g in jax.tree_util.tree_leaves_with_path(to_per_layer(encoder))}
  theirs = {path_str(p): np.asarray(g) for p, g in jax.tree_util.tree_leaves_with_path(expected)}
  assert ours.keys() == theirs.keys()
  for path, g in theirs.items():
    np.testing.assert_allclose(ours[path], g, rtol=1e-4, atol=1e-6, err_msg=path)


def test_eight_devices_and_micro_batches_change_nothing(llama):
  arrays = _pad_rows(_batch(llama, "left"), 8)
  loss1, g1, _ = _xtjax_step(llama, arrays, 1, MeshConfig(devices=1))
  loss8, g8, _ = _xtjax_step(llama, _pad_rows(arrays, 16), 2, MeshConfig(data=4, fsdp=2))
  np.testing.assert_allclose(loss8, loss1, rtol=1e-6)
  for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g8)):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-7)
