"""Head kinds are a registry: each knows its module, loss, eval output and whether it reads only the first token."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from xtjax.perf.flops import encoder_forward_flops
from xtjax.models.encoder import EncoderConfig
from xtjax.models.heads import HEAD_KINDS, HeadConfig, head_kind, loss_terms
from xtjax.models.registry import get
from xtjax.models.task_model import TaskModel

CFG = EncoderConfig(vocab_size=24, hidden_size=8, num_layers=2, num_heads=2, intermediate_size=16, dropout_rate=0.0,
                    attention_dropout_rate=0.0)
B, L, C = 3, 6, 2


def _model():
  heads = {"cls": HeadConfig("classification", 3), "mc": HeadConfig("multiple_choice"), "qa": HeadConfig("span"),
           "pos": HeadConfig("tagging", 5), "mlm": HeadConfig("mlm")}
  return TaskModel(get("encoder"), CFG, heads, rngs=nnx.Rngs(0))


def _batch(shape, rng):
  ids = rng.integers(3, CFG.vocab_size, shape).astype(np.int32)
  return {"input_ids": jnp.asarray(ids), "attention_mask": jnp.ones(shape, jnp.int32),
          "example_mask": jnp.asarray([1, 1, 0], jnp.int32)}


def test_registry_lists_every_kind_once():
  assert sorted(HEAD_KINDS) == ["classification", "mlm", "multiple_choice", "span", "tagging", "text_to_text"]
  assert sorted(k for k, v in HEAD_KINDS.items() if v.first_token_only) == ["classification", "multiple_choice"]
  assert [k for k, v in HEAD_KINDS.items() if v.seq2seq] == ["text_to_text"]
  with pytest.raises(ValueError, match="z_loss applies to text_to_text heads, not 'span'"):
    loss_terms("span", None, {}, z_loss=1e-4)
  with pytest.raises(ValueError, match="unknown head type 'regression'"):
    HeadConfig("regression")
  with pytest.raises(ValueError, match="unknown head type 'regression'"):
    head_kind("regression")


def test_parameter_paths_per_kind():
  params = nnx.to_pure_dict(nnx.split(_model())[1])["heads"]
  assert {k: sorted(v) for k, v in params.items()} == {
      "cls": ["dense", "out"], "mc": ["dense", "out"], "qa": ["out"], "pos": ["out"], "mlm": ["bias", "dense", "norm"]}
  assert params["cls"]["out"]["kernel"].shape == (8, 3) and params["mc"]["out"]["kernel"].shape == (8, 1)
  assert params["mlm"]["bias"].shape == (CFG.vocab_size,)


def test_eval_outputs_and_losses_of_every_kind():
  model, rng = _model(), np.random.default_rng(0)
  flat, mc = _batch((B, L), rng), _batch((B, C, L), rng)
  labels = {"cls": jnp.asarray([0, 2, 1]), "mc": jnp.asarray([1, 0, 1]),
            "pos": jnp.asarray(rng.integers(-1, 5, (B, L)).clip(-100)), "mlm": jnp.full((B, L), -100).at[:, 1].set(4)}
  shapes = {"cls": (B, 3), "mc": (B, C), "pos": (B, L, 5), "mlm": (B, L, CFG.vocab_size)}
  for task, shape in shapes.items():
    batch = {**(mc if task == "mc" else flat), "labels": labels[task]}
    out = model.eval_outputs(task, batch)
    assert out.shape == shape and out.dtype == jnp.float32, task
    total, count = loss_terms(model.head_types[task], model(task, batch), batch)
    assert np.isfinite(float(total)) and float(count) == (2 if task in ("cls", "mc") else
                                                            float(((labels[task] != -100) & (np.arange(B) < 2)[:, None]).sum()))
  start, end = model.eval_outputs("qa", flat)
  assert start.shape == end.shape == (B, L)
  total, count = loss_terms("span", model("qa", flat), {**flat, "start_positions": jnp.asarray([1, 2, 0]),
                                                         "end_positions": jnp.asarray([2, 3, 0])})
  assert float(count) == 2 and np.isfinite(float(total))


def test_first_token_heads_ignore_padding_positions():
  """The property the inference engine relies on when it cuts requests to their attended length."""
  model, rng = _model(), np.random.default_rng(1)
  batch = _batch((B, L), rng)
  padded = {**batch, "input_ids": jnp.pad(batch["input_ids"], ((0, 0), (0, 4))),
            "attention_mask": jnp.pad(batch["attention_mask"], ((0, 0), (0, 4)))}
  np.testing.assert_allclose(model.eval_outputs("cls", batch), model.eval_outputs("cls", padded), atol=1e-5)


def test_flops_read_the_first_token_flag():
  full = encoder_forward_flops(CFG, 64, "tagging", 5)
  first = encoder_forward_flops(CFG, 64, "classification", 5)
  assert first < full  # the last layer computes one query position for first-token heads
