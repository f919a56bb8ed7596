"""Scan over layers and remat policies compute exactly what the unrolled encoder computes."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from xtjax.models import registry
from xtjax.models.encoder import Encoder, EncoderConfig

CFG = EncoderConfig(vocab_size=50, hidden_size=16, num_layers=4, num_heads=2, intermediate_size=32,
                    max_position_embeddings=24, type_vocab_size=1, pad_token_id=1, position_style="roberta",
                    model_type="xlm-roberta", layer_norm_eps=1e-5)
# (scan_layers, remat, last_layer_queries): every switch, each with and without the first-token last layer.
VARIANTS = [(True, "none", None), (True, "none", 1), (False, "full", 1), (True, "full", None),
            (True, "dots_saveable", 1), (False, "dots_with_no_batch_dims_saveable", None)]


def _close(actual, desired):
  """f32 equality up to summation order: 1e-5 of the tensor's largest magnitude."""
  desired = np.asarray(desired)
  np.testing.assert_allclose(actual, desired, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(desired).max())))


def _batch():
  ids = np.array([[0, 5, 6, 7, 8, 2, 1, 1], [0, 9, 10, 11, 12, 13, 14, 2]], np.int32)
  return jnp.asarray(ids), jnp.asarray((ids != 1).astype(np.int32))


def _run(cfg, state, graphdef, first=None):
  ids, mask = _batch()
  key = jax.random.key(3)

  def loss(st):
    out = nnx.merge(graphdef, st)(ids, mask, dropout_key=key, last_layer_queries=first)
    total = sum(jnp.sum(jnp.sin(h)) for h in out.hidden_states) + jnp.sum(out.pooler_output ** 2)
    return total, out

  (value, out), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(state)
  return value, out, grads


@pytest.fixture(scope="module")
def reference():
  graphdef, state = nnx.split(Encoder(CFG, nnx.Rngs(0)))
  return state, {first: _run(CFG, state, graphdef, first) for first in (None, 1)}


@pytest.mark.parametrize("scan,remat,first", VARIANTS)
def test_outputs_and_gradients_equal_the_unrolled_model(reference, scan, remat, first):
  state, ref = reference
  cfg = dataclasses.replace(CFG, scan_layers=scan, remat=remat)
  graphdef, _ = nnx.split(Encoder(cfg, nnx.Rngs(0)))
  value, out, grads = _run(cfg, state, graphdef, first)
  ref_value, ref_out, ref_grads = ref[first]
  _close(value, ref_value)
  assert len(out.hidden_states) == CFG.num_layers + 1
  for a, b in zip(out.hidden_states, ref_out.hidden_states):
    _close(a, b)
  for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
    _close(a, b)


def test_parameters_are_stored_per_layer_whatever_the_switches():
  """Checkpoints, HF import/export and per-layer learning rates see the same tree either way."""
  plain = nnx.state(Encoder(CFG, nnx.Rngs(0)))
  scanned = nnx.state(Encoder(dataclasses.replace(CFG, scan_layers=True, remat="full"), nnx.Rngs(0)))
  assert jax.tree.structure(plain) == jax.tree.structure(scanned)
  fam = registry.get("encoder")
  pure = jax.tree.map(np.asarray, nnx.to_pure_dict(scanned))
  tensors = fam.params_to_hf(dataclasses.replace(CFG, scan_layers=True), pure)
  back, _ = fam.params_from_hf(dataclasses.replace(CFG, scan_layers=True), tensors, where="test")
  for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(pure)):
    np.testing.assert_array_equal(a, b)


def test_unknown_remat_policy_is_an_error():
  with pytest.raises(ValueError, match="remat must be one of"):
    dataclasses.replace(CFG, remat="sometimes")
