"""optim.optimizer: adafactor is optax.adafactor as mT5 fine-tuned (factored, no momentum, constant lr)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from xtjax import config as config_lib
from xtjax.errors import ConfigError
from xtjax.train import optim
from xtjax.runs.schema import OptimConfig

MT5 = OptimConfig(optimizer="adafactor", learning_rate=1e-3, schedule="constant", warmup_steps=0, weight_decay=0.0,
                  max_grad_norm=None)


def _tree():
  k = jax.random.split(jax.random.key(0), 4)
  params = {"dense": {"kernel": jax.random.normal(k[0], (128, 130)) * 0.05, "bias": jnp.zeros(130)}}
  grads = {"dense": {"kernel": jax.random.normal(k[1], (128, 130)), "bias": jax.random.normal(k[2], (130,))}}
  return params, grads


def test_one_step_matches_optax_adafactor_and_the_formula():
  params, grads = _tree()
  tx, sched = optim.build(MT5, params, total_steps=10, num_layers=0)
  assert float(sched(0)) == float(sched(9)) == 1e-3
  ours, state = tx.update(grads, tx.init(params), params)
  ref_tx = optax.adafactor(1e-3)
  ref, _ = ref_tx.update(grads, ref_tx.init(params), params)
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(ref)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
  # By hand, first step of the factored [128, 130] kernel (decay 1 - 1**-0.8 = 0: the statistics are this g**2).
  g, p = np.asarray(grads["dense"]["kernel"], np.float64), np.asarray(params["dense"]["kernel"], np.float64)
  g2 = g * g + 1e-30
  row, col = g2.mean(1), g2.mean(0)
  u = g / np.sqrt(np.outer(row, col) / row.mean())
  u = u / max(1.0, np.sqrt((u * u).mean()))
  expected = -1e-3 * u * max(np.sqrt((p * p).mean()), 1e-3)
  np.testing.assert_allclose(np.asarray(ours["dense"]["kernel"]), expected, rtol=1e-4)
  # Factored second moments, no momentum: a row and a column vector for the kernel, nothing of its size.
  shapes = {x.shape for x in jax.tree.leaves(state)}
  assert (128,) in shapes and (130,) in shapes and (128, 130) not in shapes


def test_attention_kernels_are_factored_as_mesh_tensorflow_matrices():
  """[d_model, heads, d_kv] and [heads, d_kv, d_model] kernels get the update optax.adafactor gives
  their [d_model, heads * d_kv] / [heads * d_kv, d_model] matrices (mT5's layout), factored."""
  k = jax.random.split(jax.random.key(1), 4)
  params = {"q": jax.random.normal(k[0], (128, 4, 64)) * 0.05, "o": jax.random.normal(k[1], (4, 64, 128)) * 0.05}
  grads = {"q": jax.random.normal(k[2], (128, 4, 64)), "o": jax.random.normal(k[3], (4, 64, 128))}
  tx, _ = optim.build(MT5, params, total_steps=10, num_layers=0)
  state = tx.init(params)
  for _ in range(2):  # the second step reads the statistics the first one stored
    ours, state = tx.update(grads, state, params)
  as_matrix = {"q": lambda x: x.reshape(128, 256), "o": lambda x: x.reshape(256, 128)}
  ref_tx = optax.adafactor(1e-3)
  mats = {n: as_matrix[n](v) for n, v in params.items()}
  ref_state = ref_tx.init(mats)
  for _ in range(2):
    ref, ref_state = ref_tx.update({n: as_matrix[n](v) for n, v in grads.items()}, ref_state, mats)
  for n in params:
    assert ours[n].shape == params[n].shape
    np.testing.assert_allclose(np.asarray(ours[n]).reshape(ref[n].shape), np.asarray(ref[n]), rtol=1e-6, err_msg=n)
  shapes = {x.shape for x in jax.tree.leaves(state)}
  assert {(128,), (256,)} <= shapes and not any(len(s) == 3 for s in shapes), shapes


def test_adafactor_is_selected_in_config_and_rejects_adamw_weight_decay(tmp_path):
  path = tmp_path / "o.yaml"
  path.write_text("optimizer: adafactor\nlearning_rate: 1.0e-3\nschedule: constant\nweight_decay: 0.0\n")
  assert config_lib.load(path, OptimConfig).optimizer == "adafactor"
  params, _ = _tree()
  with pytest.raises(ConfigError, match="optim.weight_decay"):
    optim.build(OptimConfig(optimizer="adafactor"), params, total_steps=1, num_layers=0)
  with pytest.raises(Exception, match="optimizer"):
    config_lib.from_dict(OptimConfig, {"optimizer": "sgd"}, "test")


def test_adafactor_state_shards_on_a_mesh(tmp_path_factory):
  # The factored statistics have the params' tree structure but not their shapes: they are replicated.
  from t5_fixtures import tiny_t5_folder

  from xtjax.models.heads import HeadConfig
  from xtjax.models.loading import load_pretrained
  from xtjax.parallel.mesh import MeshConfig, make_mesh
  from xtjax.parallel.rules import DEFAULT_RULES
  from xtjax.train.setup import EncoderStart, build_model, init_state
  from xtjax.train.state import state_sharding

  mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
  pre = load_pretrained(str(tiny_t5_folder(tmp_path_factory, "mt5")), mesh=mesh, rules=DEFAULT_RULES)
  start = EncoderStart(pre.family, pre.config, pre.params, pre.tokenizer, "test")
  _, params, param_sh = build_model(start, {"t": HeadConfig("text_to_text")}, 0, mesh, DEFAULT_RULES)
  tx, _ = optim.build(MT5, params, total_steps=1, num_layers=2)
  sh = state_sharding(jax.eval_shape(lambda p: init_state(p, tx, 0), params), param_sh, mesh)
  state = jax.jit(lambda p: init_state(p, tx, 0), out_shardings=sh)(params)
  assert len(jax.tree.leaves(state.opt_state)) > 3
