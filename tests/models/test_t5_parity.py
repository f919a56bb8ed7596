"""mT5 / T5 / umT5 logits and encoder hidden states equal transformers' PyTorch models (f32, padded)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from t5_fixtures import PROMPTS, hf_model, tiny_t5_folder

from xtjax.models.loading import load_pretrained
from xtjax.models.t5 import relative_position_bucket

TARGETS = ["Hund lazy fox", "the", "world tiny corpus words and more", "x", "quick brown"]


# Jitted so each test compiles a few programs instead of dispatching (and compiling) op by op.
@functools.partial(jax.jit, static_argnums=0)
def _forward(graphdef, params, ids, mask, dec_ids, dec_mask):
  model = nnx.merge(graphdef, params)
  return model(ids, mask, dec_ids, dec_mask), model.encoder_outputs(ids, mask), model.encode(ids, mask)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _cached_and_full(graphdef, params, ids, mask, steps):
  """Greedy decoding with the cache (a scan over steps), then one teacher-forced pass over the result."""
  model = nnx.merge(graphdef, params)
  hidden = model.encode(ids, mask)

  def step(carry, _):
    cache, token = carry
    out = model.decode(token, hidden, mask, cache=cache)
    nxt = jnp.argmax(out.logits[:, -1], -1).astype(jnp.int32)[:, None]
    return (out.cache, nxt), (out.logits[:, 0], token[:, 0], out.cache.index)

  start = jnp.zeros((ids.shape[0], 1), jnp.int32)
  _, (step_logits, inputs, index) = jax.lax.scan(step, (model.init_cache(hidden, steps), start), None, length=steps)
  inputs_BxT = inputs.T
  return jnp.swapaxes(step_logits, 0, 1), model.decode(inputs_BxT, hidden, mask).logits, index


def _batch(tok):
  enc = tok(PROMPTS, padding=True, return_tensors="np")
  dec = tok(TARGETS, padding=True, return_tensors="np")
  start = np.zeros((len(TARGETS), 1), np.int64)  # decoder_start_token_id
  dec_ids = np.concatenate([start, dec["input_ids"][:, :-1]], axis=1)
  dec_mask = np.concatenate([np.ones_like(start), dec["attention_mask"][:, :-1]], axis=1)
  assert (enc["attention_mask"] == 0).any() and (dec_mask == 0).any(), "both batches must contain padding"
  return enc["input_ids"], enc["attention_mask"], dec_ids, dec_mask


def _torch_forward(folder, kind, ids, mask, dec_ids, dec_mask):
  import torch

  model = hf_model(folder, kind)
  with torch.no_grad():
    out = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), decoder_input_ids=torch.tensor(dec_ids),
                decoder_attention_mask=torch.tensor(dec_mask), output_hidden_states=True)
  return (model, out.logits.numpy(), out.decoder_hidden_states[-1].numpy(),
          [h.numpy() for h in out.encoder_hidden_states])


def _checkpoint_head_logits(folder, decoder_out, d_model):
  """Logits as the checkpoint means them (T5X / Mesh TF): a tied head (T5 v1.0) projects the decoder
  output scaled by d_model**-0.5 with the embedding; an untied one (mT5, T5 v1.1, umT5) projects it
  unscaled with its own `lm_head`. Computed from transformers' decoder output and the checkpoint's own
  tensors, so it does not depend on how a transformers release treats the head."""
  from safetensors.numpy import load_file

  tensors = load_file(str(folder / "model.safetensors"))
  if "lm_head.weight" in tensors and not np.array_equal(tensors["lm_head.weight"], tensors["shared.weight"]):
    return decoder_out @ tensors["lm_head.weight"].T
  return (decoder_out * d_model ** -0.5) @ tensors["shared.weight"].T


@pytest.mark.parametrize("kind", ["mt5", "t5", "t5-v1_1", "umt5"])
def test_logits_match_pytorch(tmp_path_factory, kind):
  """Our logits equal the checkpoint's meaning computed on transformers' decoder, and transformers' own
  logits. umT5 is the one place transformers releases disagree: 4.x and >= 5.24 give the untied,
  unscaled logits of the umT5 checkpoints (T5X `logits_via_embedding=False`), which is what xtjax
  computes; 5.0-5.23 forced `tie_word_embeddings` and so rescaled them by d_model**-0.5."""
  folder = tiny_t5_folder(tmp_path_factory, kind)
  pre = load_pretrained(folder)
  ids, mask, dec_ids, dec_mask = _batch(pre.tokenizer)
  hf, hf_logits, hf_decoder_out, ref_hidden = _torch_forward(folder, kind, ids, mask, dec_ids, dec_mask)
  logits, out, encoded = _forward(pre.graphdef, pre.params, *map(jnp.asarray, (ids, mask, dec_ids, dec_mask)))
  logits = np.asarray(logits)
  dm = dec_mask.astype(bool)
  ref_logits = _checkpoint_head_logits(folder, hf_decoder_out, pre.config.d_model)
  diff = np.abs(logits[dm] - ref_logits[dm]).max()
  assert diff < 1e-4, f"max abs logits diff {diff} against the checkpoint's head on transformers' decoder"

  tol = 1e-4
  if kind == "umt5" and np.abs(hf_logits[dm] - ref_logits[dm]).max() >= tol:
    import transformers

    # transformers 5.0-5.23: the untied head applied to the rescaled decoder output.
    hf_logits, tol = hf_logits * pre.config.d_model ** 0.5, tol * pre.config.d_model ** 0.5
    assert np.abs(hf_logits[dm] - ref_logits[dm]).max() < tol, (
        f"transformers {transformers.__version__} treats the umT5 head in a third way: neither untied "
        "unscaled (4.x, >= 5.24) nor rescaled by d_model**-0.5 (5.0-5.23)")
  diff = np.abs(logits[dm] - hf_logits[dm]).max()
  assert diff < tol, f"max abs logits diff {diff} against transformers' logits"

  assert out.pooler_output is None and len(out.hidden_states) == len(ref_hidden) == 3
  em = mask.astype(bool)
  for i, (ours, theirs) in enumerate(zip(out.hidden_states, ref_hidden)):
    np.testing.assert_allclose(np.asarray(ours)[em], theirs[em], atol=1e-5, rtol=0, err_msg=f"encoder layer {i}")
  np.testing.assert_array_equal(np.asarray(encoded), np.asarray(out.last_hidden_state))


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_buckets,max_distance", [(32, 128), (8, 20), (64, 256)])
def test_relative_position_bucket_matches_transformers(bidirectional, num_buckets, max_distance):
  import torch
  from transformers.models.t5.modeling_t5 import T5Attention

  rp = np.arange(-600, 601)
  ref = T5Attention._relative_position_bucket(torch.tensor(rp), bidirectional, num_buckets, max_distance).numpy()
  ours = np.asarray(relative_position_bucket(jnp.asarray(rp), bidirectional, num_buckets, max_distance))
  np.testing.assert_array_equal(ours, ref)


def test_cached_decoding_equals_full_forward(tmp_path_factory):
  """Greedy decoding step by step with the cache gives, at every step, the logits of a full
  teacher-forced pass over the generated prefix (one pass over the final sequence: it is causal)."""
  folder = tiny_t5_folder(tmp_path_factory, "mt5")
  pre = load_pretrained(folder)
  enc = pre.tokenizer(PROMPTS[:3], padding=True, return_tensors="np")
  steps = 8
  cached, full, index = _cached_and_full(pre.graphdef, pre.params, jnp.asarray(enc["input_ids"]),
                                         jnp.asarray(enc["attention_mask"]), steps)
  np.testing.assert_array_equal(np.asarray(index), np.arange(1, steps + 1))
  for t in range(steps):
    diff = np.abs(np.asarray(cached[:, t]) - np.asarray(full[:, t])).max()
    assert diff < 1e-4, f"step {t}: cached vs full logits differ by {diff}"


def test_shift_right_matches_transformers():
  import torch
  import transformers as tf

  from xtjax.models.t5 import T5Config, shift_right

  labels = np.array([[5, 6, 1, -100, -100], [7, 1, -100, -100, -100]])
  with torch.device("meta"):
    hf = tf.MT5ForConditionalGeneration(tf.MT5Config(vocab_size=16, d_model=8, d_kv=2, d_ff=8, num_layers=1,
                                                     num_heads=2))
  ref = hf._shift_right(torch.tensor(labels)).numpy()
  np.testing.assert_array_equal(np.asarray(shift_right(jnp.asarray(labels), T5Config())), ref)
