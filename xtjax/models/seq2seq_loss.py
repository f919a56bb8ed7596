"""The `text_to_text` head: teacher-forced decoder logits and their cross-entropy over target tokens.

There are no head parameters: the encoder-decoder's own LM head produces the logits, so phase
bridging keeps the whole model. Normalisation: the loss is summed over every real target token
and divided by the number of real target tokens in the whole optimizer batch (T5X's
`loss_normalizing_factor="NUM_REAL_TARGET_TOKENS"`, and what transformers'
`MT5ForConditionalGeneration(labels=...)` computes for one batch), so long targets weigh more
than short ones and micro-batches, devices and hosts change nothing. Padding (label -100) and
padding rows (`example_mask` 0) contribute nothing.

Optional z-loss (Mesh TensorFlow / T5X `cross_entropy_with_logits`): `z_loss * logsumexp(logits)**2`
per target token, added to the summed loss; it keeps the softmax normaliser near 1 in bf16.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from xtjax.models.t5 import Segments, shift_right

IGNORE = -100


def teacher_forced_logits(model, batch: dict, dropout_key=None):
  """[B, T, V] f32 logits of an encoder-decoder (`T5`) for `batch["labels"]` [B, T]; of packed rows when
  the batch has segment ids (`xtjax.data.packing.SEGMENT_KEYS`)."""
  if "inputs_segment_ids" in batch:
    segments = Segments(*(batch[k] for k in Segments._fields))
    decoder_input_ids = shift_right(batch["labels"], model.cfg, segments.targets_positions)
    return model(batch["input_ids"], batch["attention_mask"], decoder_input_ids, dropout_key=dropout_key,
                 segments=segments)
  decoder_input_ids = shift_right(batch["labels"], model.cfg)
  return model(batch["input_ids"], batch["attention_mask"], decoder_input_ids, dropout_key=dropout_key)


def loss_terms(logits_BxTxV, labels_BxT, example_mask_B, z_loss: float = 0.0):
  """(summed loss over real target tokens, number of them)."""
  logits = logits_BxTxV.astype(jnp.float32)
  mask = (labels_BxT != IGNORE) & example_mask_B.astype(bool)[:, None]
  log_z = jax.nn.logsumexp(logits, axis=-1)
  gold = jnp.take_along_axis(logits, jnp.where(mask, labels_BxT, 0)[..., None], axis=-1)[..., 0]
  per_token = log_z - gold
  if z_loss:
    per_token = per_token + z_loss * jnp.square(log_z)
  mask = mask.astype(jnp.float32)
  return (per_token * mask).sum(), mask.sum()
