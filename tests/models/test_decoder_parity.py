"""Llama / Qwen2 / Mistral logits and hidden states equal transformers' PyTorch models (f32, padded on
either side); the KV-cache path equals the full pass; export round trips bit-identically; strict errors."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from decoder_fixtures import KINDS, PROMPTS, hf_model, tiny_decoder_folder
from flax import nnx

from xtjax.errors import CheckpointError
from xtjax.models import decoder_family
from xtjax.models.decoder import Decoder
from xtjax.models.loading import load_pretrained


@functools.partial(jax.jit, static_argnums=0)
def _forward(graphdef, params, ids, mask):
  out = nnx.merge(graphdef, params)(ids, mask)
  return out.logits, out.hidden_states


def _batch(tok, side):
  tok.padding_side = side
  enc = tok(PROMPTS, padding=True, return_tensors="np")
  assert (enc["attention_mask"] == 0).any()
  return enc["input_ids"], enc["attention_mask"]


def _torch(folder, kind, ids, mask):
  import torch

  # transformers' forward counts positions from the first slot; generate() counts real tokens, as we do.
  pos = np.maximum(np.cumsum(mask, 1) - 1, 0)
  with torch.no_grad():
    out = hf_model(folder, kind)(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                                 position_ids=torch.tensor(pos), output_hidden_states=True)
  return out.logits.numpy(), [h.numpy() for h in out.hidden_states]


def _load(folder, layer_layout):
  """The Hugging Face folder streamed into the layout under test (stacked: one [layers, ...] tensor each)."""
  pre = load_pretrained(folder)
  assert ("stacked" in nnx.to_pure_dict(pre.params)["layers"]) == (layer_layout == "stacked")
  return pre


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_logits_match_pytorch(tmp_path_factory, kind, layer_layout):
  folder = tiny_decoder_folder(tmp_path_factory, kind)
  pre = _load(folder, layer_layout)
  graphdef, params = nnx.split(pre.model())
  for side in ("left", "right"):
    ids, mask = _batch(pre.tokenizer, side)
    ref_logits, ref_hidden = _torch(folder, kind, ids, mask)
    logits, hidden = _forward(graphdef, params, ids, mask)
    real = mask.astype(bool)  # padding positions are undefined in both
    np.testing.assert_allclose(np.asarray(logits)[real], ref_logits[real], atol=1e-4, rtol=0)
    assert len(hidden) == len(ref_hidden) == pre.config.num_layers + 1
    for ours, ref in zip(hidden, ref_hidden):
      np.testing.assert_allclose(np.asarray(ours)[real], ref[real], atol=1e-4, rtol=0)
  if pre.config.sliding_window:  # the window changes the result: the test above would see it missing
    unwindowed = nnx.merge(nnx.graphdef(Decoder(dataclasses.replace(pre.config, sliding_window=0), nnx.Rngs(0))),
                           params)
    assert not np.allclose(np.asarray(unwindowed(ids, mask).logits)[real], ref_logits[real], atol=1e-3)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _cached(graphdef, params, ids, mask, steps):
  """Prefill with the prompt, then `steps` greedy tokens one at a time; then one full pass over it all."""
  model = nnx.merge(graphdef, params)
  B, L = ids.shape
  out = model(ids, mask, cache=model.init_cache(B, L + steps))

  def step(carry, _):
    cache, logits = carry
    token = jnp.argmax(logits, -1).astype(jnp.int32)[:, None]
    o = model(token, jnp.ones_like(token), cache=cache)
    return (o.cache, o.logits[:, -1]), (token[:, 0], o.logits[:, -1])

  _, (tokens, step_logits) = jax.lax.scan(step, (out.cache, out.logits[:, -1]), None, length=steps)
  all_ids = jnp.concatenate([ids, tokens.T], axis=1)
  all_mask = jnp.concatenate([mask, jnp.ones_like(tokens.T)], axis=1)
  return jnp.swapaxes(step_logits, 0, 1), model(all_ids, all_mask).logits[:, L:]


@pytest.mark.parametrize("kind", ["llama", "mistral"])
def test_cached_decoding_equals_full_pass(tmp_path_factory, kind, layer_layout):
  pre = _load(tiny_decoder_folder(tmp_path_factory, kind), layer_layout)
  graphdef, params = nnx.split(pre.model())
  for side in ("left", "right"):
    ids, mask = _batch(pre.tokenizer, side)
    stepped, full = _cached(graphdef, params, ids, mask, 6)
    np.testing.assert_allclose(np.asarray(stepped), np.asarray(full), atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["llama", "llama-tied"])
def test_export_round_trips_bit_identically(tmp_path_factory, tmp_path, kind, layer_layout):
  """HF -> xtjax model folder (`xtjax convert`) -> HF (`xtjax export`): the same bytes, a config transformers
  reads; stacked, the import stacks each layer's tensors and the export slices them out again."""
  from safetensors.numpy import load_file

  from xtjax.cli.main import main

  folder = tiny_decoder_folder(tmp_path_factory, kind)
  assert main(["convert", "--model", str(folder), "--out", str(tmp_path / "xtjax")]) == 0
  assert main(["export", "--model", str(tmp_path / "xtjax"), "--out", str(tmp_path / "export")]) == 0
  pre, out = _load(folder, layer_layout), tmp_path / "export"
  original, exported = load_file(str(folder / "model.safetensors")), load_file(str(out / "model.safetensors"))
  assert sorted(original) == sorted(exported)
  for name, t in original.items():
    assert exported[name].dtype == t.dtype and exported[name].tobytes() == t.tobytes(), name
  again = _load(out, layer_layout)
  assert again.config == pre.config
  import transformers

  cfg = transformers.AutoConfig.from_pretrained(str(out))
  assert type(cfg).__name__ == KINDS[kind][0] and cfg.tie_word_embeddings == pre.config.tie_word_embeddings


def _tensors(folder):
  from safetensors.numpy import load_file

  return load_file(str(folder / "model.safetensors"))


def test_strict_tensor_errors(tmp_path_factory):
  folder = tiny_decoder_folder(tmp_path_factory, "llama")
  cfg = load_pretrained(folder, with_tokenizer=False).config
  tensors = _tensors(folder)
  bare = {k.removeprefix("model."): v for k, v in tensors.items()}  # a bare LlamaModel checkpoint loads too
  assert decoder_family.params_from_hf(cfg, bare)[0].keys() == decoder_family.params_from_hf(cfg, tensors)[0].keys()
  cases = {
      "missing tensor 'model.layers.1.mlp.up_proj.weight'":
          {k: v for k, v in tensors.items() if k != "model.layers.1.mlp.up_proj.weight"},
      "missing tensor 'lm_head.weight'": {k: v for k, v in tensors.items() if k != "lm_head.weight"},
      "unexpected tensors ['model.layers.2.mlp.up_proj.weight']":
          {**tensors, "model.layers.2.mlp.up_proj.weight": tensors["model.layers.1.mlp.up_proj.weight"]},
      "tensor 'model.layers.0.self_attn.k_proj.weight' has shape [32, 32], expected [16, 32]":
          {**tensors, "model.layers.0.self_attn.k_proj.weight": tensors["model.layers.0.self_attn.q_proj.weight"]},
  }
  for message, bad in cases.items():
    with pytest.raises(CheckpointError, match=message.replace("[", r"\[").replace("]", r"\]")):
      decoder_family.params_from_hf(cfg, bad, where="ckpt")
  tied = dataclasses.replace(cfg, tie_word_embeddings=True)
  with pytest.raises(CheckpointError, match="'lm_head.weight' differs from 'model.embed_tokens.weight'"):
    decoder_family.params_from_hf(tied, tensors)


def test_config_errors():
  hf = decoder_family.hf_config_from(decoder_family.PRESETS["llama-3.1-8b"])
  assert decoder_family.config_from_hf(hf) == decoder_family.PRESETS["llama-3.1-8b"]
  with pytest.raises(CheckpointError, match="missing key 'intermediate_size'"):
    decoder_family.config_from_hf({k: v for k, v in hf.items() if k != "intermediate_size"})
  with pytest.raises(CheckpointError, match="rope_type must be one of"):
    decoder_family.config_from_hf({**hf, "rope_parameters": {"rope_type": "longrope", "factor": 2.0}})
  with pytest.raises(CheckpointError, match="use_sliding_window=true"):
    decoder_family.config_from_hf({**hf, "model_type": "qwen2", "use_sliding_window": True})


def test_scan_and_remat_equal_the_unrolled_stack():
  """Forward and all gradients of a 3-layer decoder: unrolled == stacked (one scan) == stacked + remat ==
  unrolled + full remat (f32, 1e-5)."""
  from xtjax.models.decoder import DecoderConfig
  from xtjax.models.scan import to_layout, to_per_layer

  base = DecoderConfig(vocab_size=50, hidden_size=16, num_layers=3, num_heads=4, num_kv_heads=2,
                       intermediate_size=24, sliding_window=5, attention_bias=True)
  ids = jnp.asarray(np.random.default_rng(0).integers(0, 50, (2, 9)), jnp.int32)
  mask = jnp.asarray([[0, 0, 1, 1, 1, 1, 1, 1, 1], [1] * 9], jnp.int32)
  params = nnx.to_pure_dict(nnx.state(Decoder(base, nnx.Rngs(0)), nnx.Param))

  def loss_and_grads(cfg):
    graphdef, state = nnx.split(Decoder(cfg, nnx.Rngs(0)))
    assert ("stacked" in nnx.to_pure_dict(state)["layers"]) == bool(cfg.scan_layers)

    def loss(p):
      nnx.replace_by_pure_dict(s := jax.tree.map(lambda x: x, state), p)
      return jnp.sum(nnx.merge(graphdef, s)(ids, mask).logits ** 2)

    loss, grads = jax.jit(jax.value_and_grad(loss))(to_layout(params, nnx.to_pure_dict(state)))
    return loss, to_per_layer(grads)

  ref_loss, ref_grads = loss_and_grads(base)
  for scan, remat in ((True, "none"), (True, "dots_saveable"), (False, "full")):
    loss, grads = loss_and_grads(dataclasses.replace(base, scan_layers=scan, remat=remat))
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    assert jax.tree.structure(grads) == jax.tree.structure(ref_grads)
    for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
      np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5)


def test_stacked_layers_trace_one_layer_body_for_training_prefill_and_decoding():
  """Stacked, the forward pass and the cached prefill/decode step hold one layer's operations whatever the
  depth (one `lax.scan`); per layer, they grow with it."""
  from xtjax.models.decoder import DecoderConfig

  def matmuls(num_layers, scan):
    cfg = DecoderConfig(vocab_size=40, hidden_size=16, num_layers=num_layers, num_heads=4, num_kv_heads=2,
                        intermediate_size=24, scan_layers=scan)
    graphdef, state = nnx.split(Decoder(cfg, nnx.Rngs(0)))
    ids = jnp.ones((2, 5), jnp.int32)

    def run(st):
      model = nnx.merge(graphdef, st)
      prefill = model(ids, ids, cache=model.init_cache(2, 8))
      return model(ids, ids).logits, model(ids[:, :1], ids[:, :1], cache=prefill.cache).logits

    return str(jax.make_jaxpr(run)(state)).count("dot_general")

  assert matmuls(2, True) == matmuls(4, True)
  assert matmuls(4, False) > matmuls(2, False) > matmuls(2, True)
