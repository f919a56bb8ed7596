"""Causal-LM text-to-text for decoder-only models: the prompt and its target in one sequence, the
prompt masked from the loss, the answer generated after the prompt at evaluation.

Batches are the text-to-text tasks' own (`tasks/text_to_text.py`, shared with encoder-decoders):
`input_ids` / `attention_mask` [B, P] hold the prompt (the tokenizer's BOS included), `labels`
[B, T] the target tokens, EOS last, -100 after. The decoder reads `[prompt | target]` (length P + T)
with the padding between the two masked out and positions counted over attended tokens only, so the
sequence is the same as an unpadded `prompt + target` (and as the prompt followed by what generation
produces). Target token j is predicted by the logits at the token before it: the prompt's last
attended token for j = 0, target token j - 1 after that. Only those T positions go through the LM
head, so the [B, P + T, vocab] logits are never built. The loss is `seq2seq_loss.loss_terms`: summed
over real target tokens and divided by their number in the whole optimizer batch, as for
encoder-decoders, so micro-batches, devices and hosts change nothing.
"""

from __future__ import annotations

import jax.numpy as jnp

from xtjax.models import layers as L
from xtjax.models.heads import IGNORE


def prompt_and_target(input_ids_BxP, attention_mask_BxP, labels_BxT):
  """(ids, attention mask, positions) [B, P + T] of the prompt followed by its target."""
  target_mask = labels_BxT != IGNORE
  ids = jnp.concatenate([input_ids_BxP, jnp.where(target_mask, labels_BxT, 0)], axis=1)
  mask = jnp.concatenate([attention_mask_BxP, target_mask.astype(attention_mask_BxP.dtype)], axis=1)
  positions = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0).astype(jnp.int32)
  return ids.astype(jnp.int32), mask, positions


def predicting_positions(attention_mask_BxP, target_length: int):
  """[B, T] index in `[prompt | target]` of the token whose logits predict target token j."""
  B, P = attention_mask_BxP.shape
  after = jnp.broadcast_to(P + jnp.arange(target_length - 1, dtype=jnp.int32), (B, target_length - 1))
  return jnp.concatenate([L.last_attended(attention_mask_BxP)[:, None], after], axis=1)


def teacher_forced_logits(model, batch: dict, dropout_key=None):
  """[B, T, V] f32 logits of a decoder-only model (`decoder.Decoder`) for `batch["labels"]` [B, T]
  after the prompt."""
  labels = batch["labels"]
  ids, mask, positions = prompt_and_target(batch["input_ids"], batch["attention_mask"], labels)
  out = model(ids, mask, positions, with_logits=False, dropout_key=dropout_key)
  at_BxT = predicting_positions(batch["attention_mask"], labels.shape[1])
  return model.logits(jnp.take_along_axis(out.last_hidden_state, at_BxT[..., None], axis=1))
