"""Task heads on top of an encoder's hidden states, and their losses: a small registry of head kinds.

Head kinds (not tasks): `classification` (single or pair sequence), `multiple_choice`, `span`
(extractive QA start/end), `tagging` (one label per token, -100 ignored), `mlm` and `text_to_text`.
Each kind (`HeadKind`) knows its module (on a bidirectional encoder, and on a causal decoder), its
loss, its eval output and whether it reads only the first token; nothing else branches on the kind's
name. On encoders the classification head is RoBERTa's (dense+tanh on the first token, then a
projection), which is also BERT's pooler followed by a classifier, so both families fine-tune the
same way. On decoder-only LLMs it is `LlamaForSequenceClassification`'s: a bias-free projection of
the last attended token, the only position that has read the whole input; span and tagging heads are
the same modules as on encoders (`LlamaForQuestionAnswering` / `LlamaForTokenClassification`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from xtjax.models import layers as L
from xtjax.models import seq2seq_loss

IGNORE = -100  # label id excluded from losses and metrics


@dataclasses.dataclass(frozen=True)
class HeadConfig:
  type: str
  num_labels: int = 2
  dropout_rate: float = 0.1

  def __post_init__(self):
    if self.type not in HEAD_KINDS:
      raise ValueError(f"unknown head type {self.type!r}; expected one of {HEAD_TYPES}")


# ---- modules: `__call__(hidden_BxLxD, dropout_key, word_embeddings_VxD, attention_mask_BxL)` -> logits ----

class _HeadModule(nnx.Module):

  def __init__(self, cfg: HeadConfig, hidden_size: int, *, rngs: nnx.Rngs, dtype="float32", param_dtype="float32",
               vocab_size: int | None = None, layer_norm_eps: float = 1e-5):
    self.cfg = cfg
    self.build(hidden_size, vocab_size, layer_norm_eps, rngs,
               dict(rngs=rngs, dtype=L.to_dtype(dtype), param_dtype=L.to_dtype(param_dtype)))

  def build(self, D: int, vocab_size, eps: float, rngs, kw: dict) -> None:
    raise NotImplementedError


class FirstTokenHead(_HeadModule):
  """Dense+tanh on the first token, then a projection: classification [B, labels], multiple choice [B*C]."""

  def build(self, D, vocab_size, eps, rngs, kw):
    outputs = self.cfg.num_labels if self.cfg.type == "classification" else 1
    self.dense = L.Dense(D, D, ("embed", None), **kw)
    self.out = L.Dense(D, outputs, ("embed", "labels"), **kw)

  def __call__(self, hidden_BxLxD, dropout_key=None, word_embeddings_VxD=None, attention_mask_BxL=None):
    rate = self.cfg.dropout_rate
    x = L.dropout(hidden_BxLxD[:, 0], rate, L.fold(dropout_key, 0))
    x = jnp.tanh(self.dense(x))
    logits = self.out(L.dropout(x, rate, L.fold(dropout_key, 1)))
    return logits if self.cfg.type == "classification" else logits[:, 0]


class LastTokenHead(_HeadModule):
  """A bias-free projection of the last attended token (transformers' `LlamaForSequenceClassification`
  `score`, which has no dropout either): classification [B, labels], multiple choice [B*C].

  transformers finds that token as the rightmost one that is not `pad_token_id`; the attention mask
  says the same without relying on the pad id being unused in the text (Llama pads with EOS)."""

  def build(self, D, vocab_size, eps, rngs, kw):
    outputs = self.cfg.num_labels if self.cfg.type == "classification" else 1
    self.score = L.Dense(D, outputs, ("embed", "labels"), use_bias=False, **kw)

  def __call__(self, hidden_BxLxD, dropout_key=None, word_embeddings_VxD=None, attention_mask_BxL=None):
    last_B = L.last_attended(attention_mask_BxL)
    logits = self.score(jnp.take_along_axis(hidden_BxLxD, last_B[:, None, None], axis=1)[:, 0])
    return logits if self.cfg.type == "classification" else logits[:, 0]


class SpanHead(_HeadModule):
  """Start and end logits per token: ([B, L], [B, L]) in f32."""

  def build(self, D, vocab_size, eps, rngs, kw):
    self.out = L.Dense(D, 2, ("embed", "labels"), **kw)

  def __call__(self, hidden_BxLxD, dropout_key=None, word_embeddings_VxD=None, attention_mask_BxL=None):
    logits = self.out(hidden_BxLxD).astype(jnp.float32)
    return logits[..., 0], logits[..., 1]


class TaggingHead(_HeadModule):
  """One label distribution per token: [B, L, labels]."""

  def build(self, D, vocab_size, eps, rngs, kw):
    self.out = L.Dense(D, self.cfg.num_labels, ("embed", "labels"), **kw)

  def __call__(self, hidden_BxLxD, dropout_key=None, word_embeddings_VxD=None, attention_mask_BxL=None):
    return self.out(L.dropout(hidden_BxLxD, self.cfg.dropout_rate, dropout_key))


class MaskedLMHead(_HeadModule):
  """Dense+GELU+LayerNorm, then the tied input embeddings and a bias: [B, L, vocab]."""

  def build(self, D, vocab_size, eps, rngs, kw):
    self.dense = L.Dense(D, D, ("embed", None), **kw)
    self.norm = L.LayerNorm(D, eps, **kw)
    self.bias = L.param(rngs, L.zeros, (vocab_size,), ("vocab",), kw["param_dtype"])

  def __call__(self, hidden_BxLxD, dropout_key=None, word_embeddings_VxD=None, attention_mask_BxL=None):
    x = self.norm(jax.nn.gelu(self.dense(hidden_BxLxD), approximate=False))
    return L.einsum("bld,vd->blv", x, word_embeddings_VxD, x.dtype) + self.bias[...].astype(x.dtype)


# ---- losses: (summed loss, number of terms), so losses average over accumulation and hosts ------------
# Batches carry `example_mask` [B] (0 for padding rows added to fill a batch).

def _xent(logits, labels, mask):
  logits = logits.astype(jnp.float32)
  per = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.where(mask, labels, 0))
  mask = mask.astype(jnp.float32)
  return (per * mask).sum(), mask.sum()


class TextToTextHead(_HeadModule):
  """No parameters: the encoder-decoder's own LM head gives the logits (`seq2seq_loss.teacher_forced_logits`)."""

  def build(self, D, vocab_size, eps, rngs, kw):
    pass


def _example_loss(logits, batch):
  return _xent(logits, batch["labels"], batch["example_mask"].astype(bool))


def _span_loss(logits, batch):
  start, end = logits
  ex = batch["example_mask"].astype(bool)
  s, n = _xent(start, batch["start_positions"], ex)
  e, _ = _xent(end, batch["end_positions"], ex)
  return (s + e) / 2.0, n


def _token_loss(logits, batch):
  labels = batch["labels"]
  return _xent(logits, labels, (labels != IGNORE) & batch["example_mask"].astype(bool)[:, None])


def _seq2seq_loss(logits, batch, z_loss: float = 0.0):
  return seq2seq_loss.loss_terms(logits, batch["labels"], batch["example_mask"], z_loss)


def _f32(outputs):
  return jax.tree.map(lambda x: x.astype(jnp.float32), outputs)


@dataclasses.dataclass(frozen=True)
class HeadKind:
  """Everything xtjax knows about one kind of head."""

  name: str
  module: type[_HeadModule]  # on bidirectional encoders (BERT, XLM-R, the T5 encoder, T5 itself)
  causal_module: type[_HeadModule] | None  # on decoder-only causal LMs (None: not defined there)
  loss: Callable[[Any, Mapping[str, jax.Array]], tuple[jax.Array, jax.Array]]  # (logits, batch) -> (sum, count)
  eval_output: str  # what the eval step returns (f32), one row per input row
  # Reads one token per row (encoders: the first, so their last layer computes that position only;
  # causal decoders: the last attended one); outputs do not depend on padding, so inference may cut
  # requests to their attended length.
  first_token_only: bool = False
  ties_word_embeddings: bool = False  # the module reads the encoder's input embeddings (MLM)
  # The whole model computes the logits, teacher-forced on `labels` (an encoder-decoder, or a causal
  # decoder reading prompt + target: `causal_lm.py`); its loss takes `z_loss`.
  seq2seq: bool = False

  def outputs(self, logits):
    """The eval step's outputs: the logits in f32 (a tuple for span heads)."""
    return _f32(logits)


HEAD_KINDS: dict[str, HeadKind] = {k.name: k for k in (
    HeadKind("classification", FirstTokenHead, LastTokenHead, _example_loss, "[B, labels]", first_token_only=True),
    HeadKind("multiple_choice", FirstTokenHead, LastTokenHead, _example_loss, "[B, choices]", first_token_only=True),
    HeadKind("span", SpanHead, SpanHead, _span_loss, "(start [B, L], end [B, L])"),
    HeadKind("tagging", TaggingHead, TaggingHead, _token_loss, "[B, L, labels]"),
    HeadKind("mlm", MaskedLMHead, None, _token_loss, "[B, L, vocab]", ties_word_embeddings=True),
    HeadKind("text_to_text", TextToTextHead, TextToTextHead, _seq2seq_loss, "[B, T, vocab] (teacher-forced)",
             seq2seq=True),
)}
HEAD_TYPES = tuple(HEAD_KINDS)


def head_kind(name: str) -> HeadKind:
  if name not in HEAD_KINDS:
    raise ValueError(f"unknown head type {name!r}; expected one of {HEAD_TYPES}")
  return HEAD_KINDS[name]


def uses_lm_logits(head_types) -> bool:
  """Whether any of these head types (retrieval and other head-less task types included) reads the model's
  own LM logits: if none does, the run's model is built without the parts only they need (`for_heads`)."""
  return any(HEAD_KINDS[t].seq2seq for t in head_types if t in HEAD_KINDS)


def Head(cfg: HeadConfig, hidden_size: int, causal: bool = False, **kw) -> _HeadModule:  # noqa: N802 - a module constructor
  """The module of `cfg.type`'s head kind, on a bidirectional encoder or (`causal`) a decoder-only LM."""
  kind = head_kind(cfg.type)
  module = kind.causal_module if causal else kind.module
  if module is None:
    raise ValueError(f"head type {cfg.type!r} is not defined on decoder-only (causal) models")
  return module(cfg, hidden_size, **kw)


def loss_terms(head_type: str, logits, batch, z_loss: float = 0.0) -> tuple[jax.Array, jax.Array]:
  """(summed loss, number of terms) of `head_type`'s loss; `z_loss` applies to text-to-text heads only."""
  kind = head_kind(head_type)
  if kind.seq2seq:
    return kind.loss(logits, batch, z_loss)
  if z_loss:
    raise ValueError(f"z_loss applies to text_to_text heads, not {head_type!r}")
  return kind.loss(logits, batch)
