"""Optimizer construction: schedules, weight-decay mask, freezing and layer-wise LR decay."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from xtjax.models.encoder import EncoderConfig
from xtjax.models.heads import HeadConfig
from xtjax.models.registry import get
from xtjax.models.task_model import TaskModel
from xtjax.train import optim
from xtjax.runs.schema import OptimConfig


def _params():
  cfg = EncoderConfig(vocab_size=20, hidden_size=8, num_layers=2, num_heads=2, intermediate_size=8)
  model = TaskModel(get("encoder"), cfg, {"t": HeadConfig("classification", 3)}, rngs=nnx.Rngs(0))
  return nnx.split(model)[1]


def test_linear_schedule_matches_hugging_face():
  import torch
  from transformers import get_linear_schedule_with_warmup

  cfg = OptimConfig(learning_rate=1e-3, warmup_steps=3)
  sched = optim.schedule(cfg, 10)
  opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
  ref = get_linear_schedule_with_warmup(opt, 3, 10)
  for step in range(10):
    assert float(sched(step)) == pytest.approx(ref.get_last_lr()[0], abs=1e-9)
    opt.step()
    ref.step()
  assert float(optim.schedule(OptimConfig(learning_rate=1e-3, schedule="constant", warmup_steps=0), 10)(7)) == 1e-3


def test_decay_mask_freezing_and_layerwise_decay():
  params = _params()
  paths = optim.tree_paths(params)
  flat = dict(zip(jax.tree.leaves(paths), jax.tree.leaves(params)))
  assert "encoder/layers/1/attention/query" in flat and "heads/t/out/bias" in flat
  cfg = OptimConfig(freeze=(r"encoder/embeddings/.*",), layerwise_lr_decay=0.5)
  scales = dict(zip(jax.tree.leaves(paths), jax.tree.leaves(optim.lr_scales(cfg, params, num_layers=2))))
  assert scales["encoder/embeddings/word"] == 0.0
  assert scales["encoder/layers/0/attention/query"] == 0.25  # 0.5 ** (2 + 1 - 1)
  assert scales["encoder/layers/1/attention/query"] == 0.5
  assert scales["encoder/pooler/kernel"] == 1.0 and scales["heads/t/out/kernel"] == 1.0
  # One step: frozen parameters do not move; biases and norms get no weight decay.
  tx, _ = optim.build(OptimConfig(learning_rate=0.1, weight_decay=0.5, freeze=(r"encoder/embeddings/.*",),
                                  warmup_steps=0, schedule="constant", max_grad_norm=None), params, 10, 2)
  zeros = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zeros, tx.init(params), params)
  upd = dict(zip(jax.tree.leaves(paths), jax.tree.leaves(updates)))
  assert not np.asarray(upd["encoder/embeddings/word"]).any()
  assert not np.asarray(upd["encoder/layers/0/attention_norm/scale"]).any()
  assert not np.asarray(upd["heads/t/out/bias"]).any()
  np.testing.assert_allclose(upd["heads/t/out/kernel"], -0.1 * 0.5 * np.asarray(flat["heads/t/out/kernel"]), rtol=1e-6)


def _layouts():
  """The same TaskModel parameters per layer and stacked (`models.scan`), 3 layers."""
  out = []
  for scan_layers in (False, True):
    cfg = EncoderConfig(vocab_size=20, hidden_size=8, num_layers=3, num_heads=2, intermediate_size=8,
                        scan_layers=scan_layers)
    model = TaskModel(get("encoder"), cfg, {"t": HeadConfig("classification", 3)}, rngs=nnx.Rngs(0))
    out.append(nnx.split(model)[1])
  return out


@pytest.mark.parametrize("cfg", [
    OptimConfig(learning_rate=0.1, weight_decay=0.1, freeze=(r"encoder/layers/0/.*",), layerwise_lr_decay=0.5,
                warmup_steps=0, schedule="constant", max_grad_norm=1.0),
    OptimConfig(optimizer="adafactor", learning_rate=1e-3, weight_decay=0.0, warmup_steps=0, schedule="constant",
                freeze=(r"encoder/layers/2/attention/.*",), max_grad_norm=None),
], ids=["adamw-freeze-decay", "adafactor"])
def test_stacked_parameters_are_updated_as_per_layer_ones(cfg):
  """Regexes see per-layer paths; Adafactor's whole-tensor statistics stay per layer on stacked tensors."""
  from xtjax.models.scan import to_per_layer

  plain, stacked = _layouts()
  updates = []
  for params in (plain, stacked):
    tx, _ = optim.build(cfg, params, 10, 3)
    grads = jax.tree.map(lambda p: jnp.cos(p * 3.0) * 0.01, params)
    state = tx.init(params)
    for _ in range(2):
      upd, state = tx.update(grads, state, params)
    updates.append(to_per_layer(nnx.to_pure_dict(upd)))
  assert jax.tree.structure(updates[0]) == jax.tree.structure(updates[1])
  for a, b in zip(jax.tree.leaves(updates[0]), jax.tree.leaves(updates[1])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8)
  frozen = updates[1]["encoder"]["layers"][0 if cfg.optimizer == "adamw" else 2]["attention"]["query"]
  assert not np.asarray(frozen).any()


def test_no_decay_pattern_splitting_a_stacked_parameter_is_an_error():
  from xtjax.errors import ConfigError

  _, stacked = _layouts()
  with pytest.raises(ConfigError, match=r"optim.no_decay: .*encoder/layers/stacked/attention/query"):
    optim.build(OptimConfig(no_decay=(r"encoder/layers/1/attention/query",)), stacked, 10, 3)
