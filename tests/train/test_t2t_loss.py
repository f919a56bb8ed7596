"""The text_to_text loss and gradients equal transformers' MT5ForConditionalGeneration(labels=...),
for any number of micro-batches and devices; z-loss adds logsumexp**2 per target token.

Gradient tolerance, measured (tiny mT5, padded batch, ignored label positions): every tensor is
within 1e-5 of its largest entry (worst 2.2e-6), and the whole gradient is as close to transformers'
float64 gradient as transformers' own float32 gradient is (relative by norm 5.8e-7 / 8.6e-7 for
accumulation 1 / 2 against torch's 7.1e-7). An element-wise relative test cannot reach 1e-5: about
12% of entries are sums that nearly cancel, where float32 rounding of either side (torch f32 against
torch f64 too) is large relative to the entry itself. So the residual is float32 rounding, not a
difference in the model (LM-head scaling, dropout, position-bias gradients agree).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from t5_fixtures import PROMPTS, hf_model, tiny_t5_folder

from xtjax.models import t5_family
from xtjax.models.heads import HeadConfig
from xtjax.models.loading import load_pretrained
from xtjax.models.seq2seq_loss import loss_terms
from xtjax.parallel.mesh import MeshConfig, make_mesh
from xtjax.parallel.rules import DEFAULT_RULES
from xtjax.tasks.text_to_text import encode_pairs
from xtjax.train.setup import EncoderStart, build_model, init_state
from xtjax.train.optim import path_str
from xtjax.parallel.batching import batch_sharding
from xtjax.train.state import state_sharding
from xtjax.train.step import compile_train_step, make_train_step

TARGETS = ["Hund lazy fox", "the", "world tiny corpus words and more", "x quick brown"]
TASK = "toy_t2t"


@pytest.fixture(scope="module")
def mt5(tmp_path_factory):
  return tiny_t5_folder(tmp_path_factory, "mt5")


def _batch(tok):
  arrays, stats = encode_pairs(list(zip(PROMPTS[:4], TARGETS)), tok, input_length=24, target_length=6)
  assert stats["truncated_targets"] >= 1 and (arrays["labels"] == -100).any() and (arrays["attention_mask"] == 0).any()
  # A padding row (example_mask 0) that must change nothing.
  arrays = {k: np.concatenate([v, v[:1]]) for k, v in arrays.items()}
  arrays["example_mask"] = np.array([1, 1, 1, 1, 0], np.int32)
  return arrays


def _hf_loss_and_grads(folder, arrays, double=False):
  import torch

  model = hf_model(folder, "mt5")
  model = model.double() if double else model
  n = int(arrays["example_mask"].sum())
  out = model(input_ids=torch.tensor(arrays["input_ids"][:n], dtype=torch.long),
              attention_mask=torch.tensor(arrays["attention_mask"][:n], dtype=torch.long),
              labels=torch.tensor(arrays["labels"][:n], dtype=torch.long))
  out.loss.backward()
  grads = {name: p.grad.numpy().astype(np.float64) for name, p in model.named_parameters() if p.grad is not None}
  return float(out.loss.detach()), grads


def _xtjax_step(folder, arrays, accum, mesh_cfg, traced=False):
  """(loss, grads as a pure dict) from one jitted train step with SGD(lr=1): grads = params - new params.
  `traced`: under the trainer's activation sharding (vocabulary-parallel LM head included)."""
  mesh = make_mesh(mesh_cfg)
  pre = load_pretrained(str(folder), mesh=mesh, rules=DEFAULT_RULES)
  start = EncoderStart(pre.family, pre.config, pre.params, pre.tokenizer, "test")
  graphdef, params, param_sh = build_model(start, {TASK: HeadConfig("text_to_text")}, 0, mesh, DEFAULT_RULES)
  tx = optax.sgd(1.0)
  state = init_state(params, tx, 0)
  state_sh = state_sharding(jax.eval_shape(lambda: state), param_sh, mesh)
  step = compile_train_step(make_train_step(graphdef, tx, TASK, "text_to_text", accum, dropout=False), state_sh, None,
                            mesh if traced else None)
  batch = {k: jax.device_put(v, batch_sharding(mesh, DEFAULT_RULES, v.shape)) for k, v in arrays.items()}
  before = jax.tree.map(np.asarray, params)
  new, metrics = step(state, batch)
  grads = jax.tree.map(lambda a, b: a - np.asarray(b), before, new.params)
  return float(metrics["loss"]), grads, pre.config


def _pad_rows(arrays, rows):
  """Repeats padding rows (example_mask 0) so the batch splits over `rows` evenly."""
  n = next(iter(arrays.values())).shape[0]
  extra = (-n) % rows
  out = {k: np.concatenate([v] + [v[-1:]] * extra) for k, v in arrays.items()}
  out["example_mask"][n:] = 0
  return out


def _flat(tree) -> dict:
  return {path_str(p): np.asarray(g, np.float64) for p, g in jax.tree_util.tree_leaves_with_path(tree)}


def _assert_close_to_scale(ours: dict, expected: dict, tol: float):
  """Every tensor within `tol` of its largest expected entry (see the module docstring)."""
  assert ours.keys() == expected.keys()
  for path, g in expected.items():
    err = np.abs(ours[path] - g).max() / np.abs(g).max()
    assert err <= tol, f"{path}: max |ours - expected| is {err:.2e} of max |expected|"


def _rel_norm(a: dict, b: dict) -> float:
  flat = lambda d: np.concatenate([d[k].ravel() for k in sorted(b)])
  return float(np.linalg.norm(flat(a) - flat(b)) / np.linalg.norm(flat(b)))


@pytest.mark.parametrize("accum", [1, 2])
def test_loss_and_every_gradient_equal_transformers(mt5, accum):
  arrays = _pad_rows(_batch(load_pretrained(str(mt5)).tokenizer), 2)
  hf_loss, hf_grads = _hf_loss_and_grads(mt5, arrays)
  loss, grads, cfg = _xtjax_step(mt5, arrays, accum, MeshConfig(devices=1))
  np.testing.assert_allclose(loss, hf_loss, rtol=1e-6)
  to_ours = lambda torch_grads: _flat(t5_family.params_from_hf(cfg, torch_grads, "torch grads")[0])
  ours, torch32 = _flat(grads["encoder"]), to_ours(hf_grads)
  _assert_close_to_scale(ours, torch32, 1e-5)
  # Float32 rounding is all that is left: against the float64 truth we are as close as torch's float32.
  torch64 = to_ours(_hf_loss_and_grads(mt5, arrays, double=True)[1])
  ours_err, torch_err = _rel_norm(ours, torch64), _rel_norm(torch32, torch64)
  assert 1e-7 < torch_err < 5e-6 and ours_err < 2 * torch_err, (ours_err, torch_err)


def test_eight_devices_and_micro_batches_change_nothing(mt5):
  arrays = _pad_rows(_batch(load_pretrained(str(mt5)).tokenizer), 8)
  loss1, g1, _ = _xtjax_step(mt5, arrays, 1, MeshConfig(devices=1))
  loss8, g8, _ = _xtjax_step(mt5, _pad_rows(arrays, 16), 2, MeshConfig(data=4, fsdp=2))
  np.testing.assert_allclose(loss8, loss1, rtol=1e-6)
  _assert_close_to_scale(_flat(g8), _flat(g1), 1e-5)


# The tiny vocabulary (178) splits over fsdp=2 (vocabulary-parallel) but not over fsdp x tensor = 4 (FSDP's default).
@pytest.mark.parametrize("mesh_cfg", [MeshConfig(data=4, fsdp=2), MeshConfig(data=2, fsdp=2, tensor=2)])
def test_vocabulary_parallel_lm_head_changes_nothing(mt5, mesh_cfg):
  """Under the trainer's activation sharding the LM head runs vocabulary-parallel (`rules.vocab_parallel`):
  the loss and every gradient equal one device's."""
  arrays = _pad_rows(_batch(load_pretrained(str(mt5)).tokenizer), 8)
  loss1, g1, cfg = _xtjax_step(mt5, arrays, 1, MeshConfig(devices=1))
  assert cfg.vocab_size % 2 == 0 and cfg.vocab_size % 4  # see above
  loss8, g8, _ = _xtjax_step(mt5, arrays, 1, mesh_cfg, traced=True)
  np.testing.assert_allclose(loss8, loss1, rtol=1e-6)
  _assert_close_to_scale(_flat(g8), _flat(g1), 1e-5)


def test_z_loss_adds_logsumexp_squared_per_real_target_token():
  logits = jax.random.normal(jax.random.key(0), (2, 3, 5))
  labels = jnp.array([[1, 2, -100], [4, -100, -100]])
  ex = jnp.array([1, 1])
  base, n = loss_terms(logits, labels, ex)
  with_z, n_z = loss_terms(logits, labels, ex, z_loss=1e-4)
  lz = jax.nn.logsumexp(logits, -1)
  mask = labels != -100
  assert float(n) == float(n_z) == 3.0
  np.testing.assert_allclose(float(with_z), float(base) + 1e-4 * float((lz ** 2 * mask).sum()), rtol=1e-6)
  gold = jnp.take_along_axis(jax.nn.log_softmax(logits), jnp.where(mask, labels, 0)[..., None], -1)[..., 0]
  np.testing.assert_allclose(float(base), float(-(gold * mask).sum()), rtol=1e-6)
  none, zero = loss_terms(logits, labels, jnp.array([0, 0]))
  assert float(none) == 0.0 and float(zero) == 0.0
