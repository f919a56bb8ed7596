"""Stacked layers (one scan) and remat policies compute exactly what the unrolled per-layer model computes,
for the encoder and for T5 (encoder and decoder stacks); the two layouts convert into each other (the decoder
LLM's own equality tests run both layouts: tests/models/test_decoder_*.py)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from xtjax.models import registry, scan
from xtjax.models import init as model_init
from xtjax.models.decoder import Decoder, DecoderConfig
from xtjax.models.encoder import Encoder, EncoderConfig
from xtjax.models.t5 import T5, T5Config

CFG = EncoderConfig(vocab_size=50, hidden_size=16, num_layers=4, num_heads=2, intermediate_size=32,
                    max_position_embeddings=24, type_vocab_size=1, pad_token_id=1, position_style="roberta",
                    model_type="xlm-roberta", layer_norm_eps=1e-5, scan_layers=False)
T5_CFG = T5Config(vocab_size=40, d_model=16, d_kv=4, d_ff=24, num_layers=3, num_decoder_layers=3, num_heads=2,
                  relative_attention_num_buckets=8, relative_attention_max_distance=16, scan_layers=False)
DEC_CFG = DecoderConfig(vocab_size=40, hidden_size=16, num_layers=3, num_heads=4, num_kv_heads=2, intermediate_size=24,
                        max_position_embeddings=32, attention_bias=True, scan_layers=False)
# (scan_layers, remat, last_layer_queries): every switch, each with and without the first-token last layer.
# `offload` needs a host memory space that XLA:CPU lacks; it differs from dots_with_no_batch_dims only in where
# the saved products live.
VARIANTS = [(True, "none", None), (True, "none", 1), (True, "full", 1), (True, "dots_saveable", None),
            (True, "dots_with_no_batch_dims_saveable", 1), (False, "full", None)]
# (scan_layers, remat, umT5: a position bias in every layer, so no first layer kept apart)
T5_VARIANTS = [(True, "none", False), (True, "full", False), (True, "dots_saveable", True),
               (True, "dots_with_no_batch_dims_saveable", False)]


def _close(actual, desired):
  """f32 equality up to summation order: 1e-5 of the tensor's largest magnitude."""
  desired = np.asarray(desired)
  np.testing.assert_allclose(actual, desired, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(desired).max())))


def _close_trees(actual, desired):
  """`actual` in either layout against per-layer `desired` (pure dicts): same paths, equal values."""
  a, d = scan.to_per_layer(actual), desired
  assert jax.tree.structure(a) == jax.tree.structure(d)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(d)):
    _close(x, y)


def _ids():
  ids = np.array([[0, 5, 6, 7, 8, 2, 1, 1], [0, 9, 10, 11, 12, 13, 14, 2]], np.int32)
  return jnp.asarray(ids), jnp.asarray((ids != 1).astype(np.int32))


def _value_and_grads(model_def, state, loss_of_model):
  def loss(st):
    return loss_of_model(nnx.merge(model_def, st))

  (value, outs), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(state)
  return value, outs, nnx.to_pure_dict(grads)


def _encoder_loss(first):
  ids, mask = _ids()

  def loss(model):
    out = model(ids, mask, dropout_key=jax.random.key(3), last_layer_queries=first)
    return sum(jnp.sum(jnp.sin(h)) for h in out.hidden_states) + jnp.sum(out.pooler_output ** 2), out.hidden_states

  return loss


def _build(cls, cfg):
  return nnx.split(cls(cfg, nnx.Rngs(0)))


@pytest.fixture(scope="module")
def encoder_reference():
  graphdef, state = _build(Encoder, CFG)
  return {first: _value_and_grads(graphdef, state, _encoder_loss(first)) for first in (None, 1)}


@pytest.mark.parametrize("scan_layers,remat,first", VARIANTS)
def test_encoder_outputs_and_gradients_equal_the_unrolled_model(encoder_reference, scan_layers, remat, first):
  graphdef, state = _build(Encoder, dataclasses.replace(CFG, scan_layers=scan_layers, remat=remat))
  stacked = nnx.to_pure_dict(state)["layers"]
  assert ("stacked" in stacked) == scan_layers
  value, hidden, grads = _value_and_grads(graphdef, state, _encoder_loss(first))
  ref_value, ref_hidden, ref_grads = encoder_reference[first]
  _close(value, ref_value)
  assert len(hidden) == CFG.num_layers + 1
  for a, b in zip(hidden, ref_hidden):
    _close(a, b)
  _close_trees(grads, ref_grads)


def _t5_loss(model):
  ids, mask = _ids()
  dec = jnp.asarray([[0, 3, 4, 5, 6], [0, 7, 8, 9, 1]], jnp.int32)
  logits = model(ids, mask, dec, dropout_key=jax.random.key(5))  # every encoder and decoder layer's gradient
  return jnp.sum(jnp.sin(logits)), logits


@pytest.fixture(scope="module")
def t5_reference():
  cache = {}

  def get(umt5):
    if umt5 not in cache:
      cfg = dataclasses.replace(T5_CFG, per_layer_position_bias=umt5)
      cache[umt5] = _value_and_grads(*_build(T5, cfg), _t5_loss)
    return cache[umt5]

  return get


@pytest.mark.parametrize("scan_layers,remat,umt5", T5_VARIANTS)
def test_t5_outputs_and_gradients_equal_the_unrolled_model(t5_reference, scan_layers, remat, umt5):
  cfg = dataclasses.replace(T5_CFG, scan_layers=scan_layers, remat=remat, per_layer_position_bias=umt5)
  graphdef, state = _build(T5, cfg)
  value, logits, grads = _value_and_grads(graphdef, state, _t5_loss)
  ref_value, ref_logits, ref_grads = t5_reference(umt5)
  _close(value, ref_value)
  _close(logits, ref_logits)
  _close_trees(grads, ref_grads)


def test_t5_first_layer_with_the_position_bias_stays_apart():
  pure = nnx.to_pure_dict(_build(T5, dataclasses.replace(T5_CFG, scan_layers=True))[1])
  for stack in ("encoder", "decoder"):
    layers = pure[stack]["layers"]
    assert set(layers) == {"first", "stacked"} and list(layers["first"]) == [0]
    assert jax.tree.leaves(layers["stacked"])[0].shape[0] == T5_CFG.num_layers - 1
  umt5 = nnx.to_pure_dict(_build(T5, dataclasses.replace(T5_CFG, scan_layers=True, per_layer_position_bias=True))[1])
  assert "first" not in umt5["encoder"]["layers"]
  assert umt5["encoder"]["layers"]["stacked"]["attention"]["relative_attention_bias"].shape == (3, 8, 2)


def test_t5_cached_decoding_reads_stacked_layers():
  ids, mask = _ids()
  outs = []
  for scan_layers in (False, True):
    model = T5(dataclasses.replace(T5_CFG, scan_layers=scan_layers), nnx.Rngs(0))
    enc = model.encode(ids, mask)
    cache = model.init_cache(enc, 4)
    logits, cache = model.decode(jnp.zeros((2, 1), jnp.int32), enc, mask, cache)
    logits2, _ = model.decode(jnp.ones((2, 1), jnp.int32), enc, mask, cache)
    outs.append((logits, logits2))
  for a, b in zip(*outs):
    _close(a, b)


@pytest.mark.parametrize("family,cfg", [("encoder", CFG), ("t5", T5_CFG), ("decoder", DEC_CFG)])
def test_hugging_face_mapping_and_placing_work_in_both_layouts(family, cfg):
  fam = registry.get(family)
  per_layer = jax.tree.map(np.asarray, nnx.to_pure_dict(_build(fam.build, cfg)[1]))
  stacked_cfg = dataclasses.replace(cfg, scan_layers=True)
  stacked = jax.tree.map(np.asarray, nnx.to_pure_dict(_build(fam.build, stacked_cfg)[1]))
  tensors = fam.params_to_hf(cfg, per_layer)
  from_stacked = fam.params_to_hf(stacked_cfg, stacked)
  assert tensors.keys() == from_stacked.keys() and all(np.array_equal(tensors[k], from_stacked[k]) for k in tensors)
  imported, _ = fam.params_from_hf(stacked_cfg, tensors, where="test")
  _, placed = model_init.place(fam, stacked_cfg, imported)  # the per-layer import stacked onto the model
  for a, b in zip(jax.tree.leaves(nnx.to_pure_dict(placed)), jax.tree.leaves(stacked)):
    np.testing.assert_array_equal(a, b)
  _, back = model_init.place(fam, cfg, stacked)  # and the stacked params placed into a per-layer model
  for a, b in zip(jax.tree.leaves(nnx.to_pure_dict(back)), jax.tree.leaves(per_layer)):
    np.testing.assert_array_equal(a, b)


def test_relayout_on_the_mesh_converts_either_way_and_names_a_mismatch():
  from xtjax.errors import CheckpointError
  from xtjax.parallel.mesh import single_device_mesh
  from xtjax.parallel.rules import state_shardings

  mesh = single_device_mesh()
  _, plain = _build(Encoder, CFG)
  _, stacked = _build(Encoder, dataclasses.replace(CFG, scan_layers=True))
  for src, dst in ((plain, stacked), (stacked, plain)):
    out = model_init.relayout(src, dst, state_shardings(dst, mesh))
    assert jax.tree.structure(out) == jax.tree.structure(dst)
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(dst)):
      np.testing.assert_array_equal(a, b)
  _, other = _build(Encoder, dataclasses.replace(CFG, num_layers=3, scan_layers=True))
  with pytest.raises(CheckpointError, match="do not fit the configured model"):
    model_init.relayout(other, plain, state_shardings(plain, mesh))


def test_scan_is_on_by_default_from_twelve_layers():
  assert not CFG.stacked_layers and not dataclasses.replace(CFG, scan_layers=None).stacked_layers
  assert dataclasses.replace(CFG, scan_layers=None, num_layers=12).stacked_layers
  assert registry.preset("xlmr-large")[1].stacked_layers and registry.preset("mt5-base")[1].stacked_layers
  assert not registry.preset("mt5-small")[1].stacked_layers
  assert registry.preset("llama-3.1-8b")[1].stacked_layers and registry.preset("llama-3.2-1b")[1].stacked_layers
  assert not dataclasses.replace(DEC_CFG, scan_layers=None).stacked_layers


def test_unknown_remat_policy_is_an_error():
  with pytest.raises(ValueError, match="remat must be one of"):
    dataclasses.replace(CFG, remat="sometimes")
  with pytest.raises(ValueError, match="remat must be one of"):
    dataclasses.replace(T5_CFG, remat="sometimes")


@pytest.mark.parametrize("saved_scan,run_scan", [(False, True), (True, False)])
@pytest.mark.parametrize("family,cls,cfg", [("encoder", Encoder, CFG), ("decoder", Decoder, DEC_CFG)])
def test_a_model_folder_starts_a_run_in_the_other_layout(tmp_path, saved_scan, run_scan, family, cls, cfg):
  """Phase bridging: the exported encoder of one run (xtjax model folder) starts the next whatever its switch,
  and loads (`load_pretrained`) in the layout its config names."""
  from xtjax.models import store
  from xtjax.models.heads import HeadConfig
  from xtjax.models.loading import load_pretrained
  from xtjax.parallel.mesh import single_device_mesh
  from xtjax.parallel.rules import DEFAULT_RULES
  from xtjax.train.setup import EncoderStart, build_model

  fam = registry.get(family)
  saved_cfg = dataclasses.replace(cfg, scan_layers=saved_scan)
  _, saved = _build(cls, saved_cfg)
  store.save(tmp_path / "model", fam, saved_cfg, saved)
  pre = load_pretrained(tmp_path / "model", with_tokenizer=False)
  assert ("stacked" in nnx.to_pure_dict(pre.params)["layers"]) == saved_scan
  start = EncoderStart(fam, dataclasses.replace(cfg, scan_layers=run_scan), pre.params, None, "test")
  _, params, _ = build_model(start, {"t": HeadConfig("classification", 3)}, 0, single_device_mesh(), DEFAULT_RULES)
  encoder = nnx.to_pure_dict(params["encoder"])
  assert ("stacked" in encoder["layers"]) == run_scan
  _close_trees(encoder, scan.to_per_layer(nnx.to_pure_dict(saved)))
