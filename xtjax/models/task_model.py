"""A backbone shared by one head per task: the model that intermediate and target training use.

Parameters live under `encoder/...` (the backbone, whatever its kind) and `heads/<task>/...`, so
phase bridging keeps `encoder` and replaces `heads`. A `text_to_text` task uses the whole model
held in `encoder` (its head has no parameters), so bridging keeps an encoder-decoder's decoder too.

Two kinds of backbone, told apart by the config's `kind` (`ModelConfig`): bidirectional encoders and
encoder-decoders (heads read the first token; text-to-text is teacher-forced through the decoder),
and decoder-only causal LMs (heads read the last attended token; text-to-text is the prompt and the
target in one sequence, `causal_lm.py`).
"""

from __future__ import annotations

import jax
from flax import nnx

from xtjax.models import causal_lm, seq2seq_loss
from xtjax.models import layers as L
from xtjax.models import lora as lora_lib
from xtjax.models.embed import encoder_outputs
from xtjax.models.heads import Head, HeadConfig, head_kind

# kind -> the text_to_text head's teacher-forced logits `fn(model, batch, dropout_key)` [B, T, V]
_TEACHER_FORCED = {"seq2seq": seq2seq_loss.teacher_forced_logits, "causal": causal_lm.teacher_forced_logits}


class TaskModel(nnx.Module):

  def __init__(self, family, encoder_cfg, heads: dict[str, HeadConfig], *, rngs: nnx.Rngs,
               lora: lora_lib.LoraConfig | None = None):
    rngs = L.KeySequence(rngs)
    self.encoder = family.build(encoder_cfg, rngs)
    self.kind = encoder_cfg.kind
    self.causal_lm = self.kind == "causal"
    self.heads = nnx.Dict({
        name: Head(hc, encoder_cfg.hidden_size, causal=self.causal_lm, rngs=rngs, dtype=encoder_cfg.dtype,
                   param_dtype=encoder_cfg.param_dtype, vocab_size=encoder_cfg.vocab_size,
                   layer_norm_eps=encoder_cfg.head_layer_norm_eps)
        for name, hc in sorted(heads.items())})
    self.head_types = {name: hc.type for name, hc in heads.items()}
    if lora is not None:  # after every base parameter, so their initial values do not depend on it
      lora_lib.attach(self, lora, rngs)

  def __call__(self, task: str, batch: dict, dropout_key: jax.Array | None = None):
    """Logits of `task`'s head; multiple-choice inputs [B, C, L] are flattened for the backbone."""
    if head_kind(self.head_types[task]).seq2seq:  # the model's own LM head; no head parameters
      if self.kind not in _TEACHER_FORCED:
        raise ValueError(f"task {task!r}: a text_to_text head needs a seq2seq or causal model, not {self.kind}")
      return _TEACHER_FORCED[self.kind](self.encoder, batch, dropout_key)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    types = batch.get("token_type_ids")
    mc = ids.ndim == 3
    if mc:
      B, C, Ln = ids.shape
      ids, mask = ids.reshape(B * C, Ln), mask.reshape(B * C, Ln)
      types = types.reshape(B * C, Ln) if types is not None else None
    head = self.heads[task]
    kind = head_kind(head.cfg.type)
    first = 1 if kind.first_token_only and not self.causal_lm else None
    out = encoder_outputs(self.encoder, ids, mask, types, L.fold(dropout_key, 0), first_tokens=first)
    word = self.encoder.embeddings.word[...] if kind.ties_word_embeddings else None
    logits = head(out.last_hidden_state, L.fold(dropout_key, 1), word, mask)
    if mc:
      logits = logits.reshape(B, C)
    return logits

  def eval_outputs(self, task: str, batch: dict):
    """What an eval step returns for `task`: its head kind's outputs (f32, no dropout)."""
    return head_kind(self.head_types[task]).outputs(self(task, batch))
