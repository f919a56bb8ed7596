"""Every layer's hidden states equal transformers' PyTorch models (f32, padded batches)."""

import jax.numpy as jnp
import numpy as np
import pytest

from xtjax.models.loading import load_pretrained

SENTENCES = ["The quick brown fox.", "Der schnelle braune Fuchs springt über den faulen Hund.",
             "敏捷的棕色狐狸", "Hello world, this is a tiny corpus for a tiny tokenizer and more words."]


def torch_hidden_states(folder, enc):
  import torch
  import transformers as tf

  model = tf.AutoModel.from_pretrained(str(folder), attn_implementation="eager").eval()
  with torch.no_grad():
    out = model(**{k: torch.tensor(v) for k, v in enc.items()}, output_hidden_states=True)
  return [h.numpy() for h in out.hidden_states], (out.pooler_output.numpy() if out.pooler_output is not None else None)


@pytest.mark.parametrize("kind", ["bert", "roberta", "xlm-roberta"])
def test_hidden_states_match_pytorch(tiny_hf, kind):
  folder = tiny_hf(kind)
  pre = load_pretrained(folder)
  enc = pre.tokenizer(SENTENCES, padding=True, return_tensors="np", return_token_type_ids=(kind == "bert"))
  enc = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
  assert (enc["attention_mask"] == 0).any(), "the batch must contain padding"
  ref, ref_pooled = torch_hidden_states(folder, enc)
  out = pre.model()(jnp.asarray(enc["input_ids"]), jnp.asarray(enc["attention_mask"]),
                    jnp.asarray(enc["token_type_ids"]) if "token_type_ids" in enc else None)
  assert len(out.hidden_states) == len(ref) == 3
  mask = enc["attention_mask"].astype(bool)
  for i, (ours, theirs) in enumerate(zip(out.hidden_states, ref)):
    np.testing.assert_allclose(np.asarray(ours)[mask], theirs[mask], atol=1e-5, rtol=0, err_msg=f"layer {i}")
  if ref_pooled is not None:
    np.testing.assert_allclose(np.asarray(out.pooler_output), ref_pooled, atol=1e-5, rtol=0)


def test_bf16_compute_stays_close_to_f32(tiny_hf):
  """bf16 compute (f32 master weights, f32 softmax and layer norm) tracks the f32 model."""
  folder = tiny_hf("xlm-roberta")
  f32 = load_pretrained(folder)
  bf16 = load_pretrained(folder, dtype="bfloat16")
  enc = f32.tokenizer(SENTENCES, padding=True, return_tensors="np")
  ids, mask = jnp.asarray(enc["input_ids"]), jnp.asarray(enc["attention_mask"])
  a = f32.model()(ids, mask).last_hidden_state
  b = bf16.model()(ids, mask).last_hidden_state
  assert b.dtype == jnp.bfloat16 and bf16.params["layers"][0]["attention"]["query"][...].dtype == jnp.float32
  m = np.asarray(mask).astype(bool)
  err = np.abs(np.asarray(a)[m] - np.asarray(b.astype(jnp.float32))[m])
  assert err.max() < 0.1 and err.mean() < 0.02


@pytest.mark.parametrize("kind", ["bert", "xlm-roberta"])
def test_last_layer_on_first_tokens_only(tiny_hf, kind):
  """`last_layer_queries=n` (what classification and multiple-choice heads use) gives the full
  computation's first n rows of the last layer, the same pooler output and the same lower layers."""
  pre = load_pretrained(tiny_hf(kind))
  enc = pre.tokenizer(SENTENCES, padding=True, return_tensors="np")
  ids, mask = jnp.asarray(enc["input_ids"]), jnp.asarray(enc["attention_mask"])
  model = pre.model()
  full = model(ids, mask)
  for n in (1, 3):
    part = model(ids, mask, last_layer_queries=n)
    assert part.last_hidden_state.shape == (len(SENTENCES), n, full.last_hidden_state.shape[-1])
    np.testing.assert_allclose(np.asarray(part.last_hidden_state), np.asarray(full.last_hidden_state[:, :n]),
                               atol=1e-6, rtol=0)
    for a, b in zip(part.hidden_states[:-1], full.hidden_states[:-1]):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    if full.pooler_output is not None:
      np.testing.assert_allclose(np.asarray(part.pooler_output), np.asarray(full.pooler_output), atol=1e-6, rtol=0)
