"""LoRA: the adapter gradient is the full model's gradient projected onto the adapters, merged
weights give the adapter model's outputs, and bad targets fail by name."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from fixtures import flat_paths as _flat
from flax import nnx

from xtjax.errors import ConfigError
from xtjax.models import layers as L
from xtjax.models import lora
from xtjax.models.decoder import DecoderConfig
from xtjax.models.encoder import EncoderConfig
from xtjax.models.heads import HeadConfig
from xtjax.models.registry import get
from xtjax.models.scan import to_per_layer
from xtjax.models.t5 import T5Config
from xtjax.models.task_model import TaskModel

ENC = EncoderConfig(vocab_size=50, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=24,
                    max_position_embeddings=32, dropout_rate=0.0, attention_dropout_rate=0.0)
T5 = T5Config(vocab_size=40, d_model=16, d_kv=4, d_ff=24, num_layers=2, num_decoder_layers=2, num_heads=2,
              dropout_rate=0.0)
DEC = DecoderConfig(vocab_size=40, hidden_size=16, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=24,
                    max_position_embeddings=32, attention_bias=True, scan_layers=False)
DEC_TARGETS = (r"layers/\d+/attention/(q|k|v|o)/kernel", r"layers/\d+/mlp/\w+/kernel", r"lm_head/kernel")
ENC_TARGETS = (r"encoder/layers/\d+/attention/(query|key|value|out)",
               r"encoder/layers/\d+/(intermediate|output)/kernel")
T5_TARGETS = (r"(encoder|decoder)/layers/\d+/\w*attention/(q|k|v|o)", r"(encoder|decoder)/layers/\d+/ffn/w\w+")
IDS = np.array([[3, 7, 9, 11, 2, 1], [4, 8, 12, 2, 1, 1]], np.int32)
MASK = (IDS != 1).astype(np.int32)


def _encoder_model(lora_cfg, scan=False):
  cfg = dataclasses.replace(ENC, scan_layers=scan)
  return TaskModel(get("encoder"), cfg, {"t": HeadConfig("classification", 3)}, rngs=nnx.Rngs(0), lora=lora_cfg)


def _encoder_out(model):
  return model("t", {"input_ids": IDS, "attention_mask": MASK})


def _family_model(family, cfg, lora_cfg):
  """A family's bare model (paths rooted at it), adapters attached when `lora_cfg` is given."""
  model = get(family).build(cfg, nnx.Rngs(0))
  if lora_cfg is not None:
    lora.attach(model, lora_cfg, nnx.Rngs(1))
  return model


def _t5_out(model):
  return model(IDS, MASK, IDS[:, :4])


def _decoder_out(model):
  return model(IDS, MASK).logits


CASES = {"decoder": (lambda c: _family_model("decoder", DEC, c), _decoder_out, DEC_TARGETS),
         "decoder-scan": (lambda c: _family_model("decoder", dataclasses.replace(DEC, scan_layers=True), c),
                          _decoder_out, DEC_TARGETS),
         "encoder": (_encoder_model, _encoder_out, ENC_TARGETS),
         "encoder-scan": (lambda c: _encoder_model(c, scan=True), _encoder_out, ENC_TARGETS),
         "t5": (lambda c: _family_model("t5", T5, c), _t5_out, T5_TARGETS)}


def _with_random_b(pure, seed=1):
  """Non-zero B everywhere (B starts at zero, which would hide a wrong dL/dA)."""
  keys = iter(jax.random.split(jax.random.key(seed), 1000))

  def walk(tree, in_adapter=False):
    out = {}
    for k, v in tree.items():
      if isinstance(v, dict):
        out[k] = walk(v, str(k).endswith(L.LORA_SUFFIX))
      else:
        out[k] = 0.3 * jax.random.normal(next(keys), v.shape, v.dtype) if in_adapter and k == "b" else v
    return out

  return walk(pure)


def _split(build, cfg):
  graphdef, state = nnx.split(build(cfg))
  return graphdef, nnx.to_pure_dict(state), state


def _apply(graphdef, state, pure, forward):
  state = jax.tree.map(lambda x: x, state)  # a copy: the caller's state never holds tracers
  nnx.replace_by_pure_dict(state, pure)
  return forward(nnx.merge(graphdef, state))


def _close(actual, expected, tol=1e-5):
  """Within `tol` relative, elementwise or to the tensor's largest entry (f32 sums of ~100 terms)."""
  np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * float(np.abs(expected).max()))


@pytest.mark.parametrize("case", sorted(CASES))
def test_lora_gradient_is_full_gradient_projected_onto_adapters(case):
  build, forward, targets = CASES[case]
  cfg = lora.LoraConfig(targets=targets, rank=3, alpha=6.0)
  graphdef, pure, state = _split(build, cfg)
  pure = _with_random_b(pure)
  full_graphdef, _, full_state = _split(build, None)
  weights = jax.random.normal(jax.random.key(5), jax.eval_shape(lambda: forward(build(None))).shape)

  def loss_lora(p):
    return jnp.sum(_apply(graphdef, state, p, forward) * weights)

  def loss_full(p):
    return jnp.sum(_apply(full_graphdef, full_state, p, forward) * weights)

  g_lora = _flat(jax.jit(jax.grad(loss_lora))(pure))
  merged = lora.merged(pure, cfg.alpha)
  g_full = _flat(jax.jit(jax.grad(loss_full))(merged))
  p = _flat(pure)
  adapted = sorted(k[:-len(L.LORA_SUFFIX + "/a")] for k in p if k.endswith(L.LORA_SUFFIX + "/a"))
  # encoder-scan: the 2 layers' 6 projections are stacked, so 6 stacked adapters stand for 12
  expected = {"t5": 2 * (4 + 3) + 2 * (8 + 3), "encoder": 12, "encoder-scan": 6, "decoder": 2 * 7 + 1,
              "decoder-scan": 7 + 1}
  assert len(adapted) == expected[case]
  s = cfg.alpha / cfg.rank
  for w in adapted:
    a, b = p[f"{w}_lora/a"], p[f"{w}_lora/b"]
    rank = a.shape[-1]
    lead = p[w].shape[:a.ndim + b.ndim - 2 - p[w].ndim]  # (layers,) for a stacked weight
    a2, b2 = a.reshape(*lead, -1, rank), b.reshape(*lead, rank, -1)
    g = g_full[w].reshape(*lead, a2.shape[-2], b2.shape[-1])  # dL/dW' of the merged (full) model
    t = lambda x: jnp.swapaxes(x, -1, -2)
    _close(g_lora[f"{w}_lora/b"].reshape(b2.shape), s * t(a2) @ g)
    _close(g_lora[f"{w}_lora/a"].reshape(a2.shape), s * g @ t(b2))
    _close(g_lora[w], g_full[w])  # the frozen base sees dL/dW' too
  # Merged weights give the adapter model's outputs.
  outputs = jax.jit(lambda full, p: (_apply(full_graphdef, full_state, full, forward),
                                     _apply(graphdef, state, p, forward)))
  _close(*outputs(merged, pure))


def test_adapters_start_as_the_base_model_and_carry_logical_axes():
  cfg = lora.LoraConfig(targets=(r"encoder/layers/\d+/attention/(query|out)",), rank=4, dropout=0.5)
  model = _encoder_model(cfg)
  base = _encoder_model(None)
  outputs = jax.jit(lambda m, key: m("t", {"input_ids": IDS, "attention_mask": MASK}, dropout_key=key))
  _close(outputs(model, None), outputs(base, None), 1e-6)  # B = 0, same base init (XLA may fuse differently)
  att = model.encoder.layers[0].attention
  assert att.query_lora.a.get_metadata()["logical_axes"] == ("embed", "lora_rank")
  assert att.query_lora.b.get_metadata()["logical_axes"] == ("lora_rank", "heads", "kv")
  assert att.out_lora.a[...].shape == (2, 8, 4) and att.out_lora.b[...].shape == (4, 16)
  assert att.out_lora.a.get_metadata()["logical_axes"] == ("heads", "kv", "lora_rank")
  # Adapter dropout follows the explicit key: none without a key, a different output with one.
  nnx.replace_by_pure_dict(state := nnx.state(model), _with_random_b(nnx.to_pure_dict(state)))
  nnx.update(model, state)
  assert not np.allclose(outputs(model, None), outputs(model, jax.random.key(0)))


@pytest.mark.parametrize("targets,message", [
    ((r"encoder/embeddings/word",), "not a projection weight"),
    ((r"encoder/layers/\d+/attention/nothing",), "matches no parameter path"),
    ((r"encoder/layers/0/attention/query",), r"every layer of the stack.*\[1\]"),
])
def test_bad_targets_fail_by_name(targets, message):
  with pytest.raises(ConfigError, match=message):
    _encoder_model(lora.LoraConfig(targets=targets))


def test_decoder_targets_of_the_shipped_lora_settings_adapt_every_stacked_projection():
  """The decoder LoRA targets `scripts/scale_table.py` plans with (rank 16 on every attention and MLP
  projection, written per layer) give a stacked decoder one stacked adapter per projection, trained on
  the same per-layer paths as the unrolled model's."""
  import sys
  from pathlib import Path

  import yaml

  sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
  import scale_table

  key, value = scale_table.LORA.split("=", 1)  # the `key=value` override the script passes to `xtjax plan`
  cfg = lora.LoraConfig(**{k: tuple(v) if k == "targets" else v for k, v in yaml.safe_load(value).items()})
  assert key == "lora" and cfg.rank == 16
  heads = {"t": HeadConfig("classification", 3)}
  paths = {}
  for scan in (False, True):
    model = TaskModel(get("decoder"), dataclasses.replace(DEC, scan_layers=scan), heads, rngs=nnx.Rngs(0), lora=cfg)
    pure = nnx.to_pure_dict(nnx.state(model))
    adapters = [k for k in _flat(pure) if k.endswith(L.LORA_SUFFIX + "/a")]
    assert len(adapters) == (7 if scan else 14)
    if scan:
      assert all(k.startswith("encoder/layers/stacked/") for k in adapters)
      assert pure["encoder"]["layers"]["stacked"]["mlp"]["down"]["kernel_lora"]["a"].shape == (2, 24, 16)
    paths[scan] = sorted(k for k in _flat(to_per_layer(pure)) if L.LORA_SUFFIX in k)
  assert paths[True] == paths[False]
