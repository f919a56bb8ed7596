"""Task heads on top of an encoder's hidden states, and their losses.

Head types (not tasks): `classification` (single or pair sequence), `multiple_choice`, `span`
(extractive QA start/end), `tagging` (one label per token, -100 ignored) and `mlm`. The
classification head is RoBERTa's (dense+tanh on the first token, then a projection), which is
also BERT's pooler followed by a classifier, so both families fine-tune the same way.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from xtjax.models import layers as L
from xtjax.models import seq2seq_loss

HEAD_TYPES = ("classification", "multiple_choice", "span", "tagging", "mlm", "text_to_text")
IGNORE = -100  # label id excluded from losses and metrics


@dataclasses.dataclass(frozen=True)
class HeadConfig:
  type: str
  num_labels: int = 2
  dropout_rate: float = 0.1

  def __post_init__(self):
    if self.type not in HEAD_TYPES:
      raise ValueError(f"unknown head type {self.type!r}; expected one of {HEAD_TYPES}")


class Head(nnx.Module):
  """One head; `__call__(hidden_BxLxD, batch, dropout_key)` returns logits."""

  def __init__(self, cfg: HeadConfig, hidden_size: int, *, rngs: nnx.Rngs, dtype="float32", param_dtype="float32",
               vocab_size: int | None = None, layer_norm_eps: float = 1e-5):
    kw = dict(rngs=rngs, dtype=L.to_dtype(dtype), param_dtype=L.to_dtype(param_dtype))
    self.cfg = cfg
    D = hidden_size
    if cfg.type in ("classification", "multiple_choice"):
      self.dense = L.Dense(D, D, ("embed", None), **kw)
      self.out = L.Dense(D, cfg.num_labels if cfg.type == "classification" else 1, ("embed", "labels"), **kw)
    elif cfg.type == "span":
      self.out = L.Dense(D, 2, ("embed", "labels"), **kw)
    elif cfg.type == "tagging":
      self.out = L.Dense(D, cfg.num_labels, ("embed", "labels"), **kw)
    elif cfg.type == "mlm":
      self.dense = L.Dense(D, D, ("embed", None), **kw)
      self.norm = L.LayerNorm(D, layer_norm_eps, **kw)
      self.bias = L.param(rngs, L.zeros, (vocab_size,), ("vocab",), L.to_dtype(param_dtype))

  def __call__(self, hidden_BxLxD, dropout_key=None, word_embeddings_VxD=None):
    t, rate = self.cfg.type, self.cfg.dropout_rate
    h = hidden_BxLxD
    if t in ("classification", "multiple_choice"):
      x = L.dropout(h[:, 0], rate, L.fold(dropout_key, 0))
      x = jnp.tanh(self.dense(x))
      logits = self.out(L.dropout(x, rate, L.fold(dropout_key, 1)))
      return logits if t == "classification" else logits[:, 0]
    if t == "span":
      logits = self.out(h).astype(jnp.float32)
      return logits[..., 0], logits[..., 1]
    if t == "tagging":
      return self.out(L.dropout(h, rate, dropout_key))
    # mlm: transform, then tied output embeddings.
    x = self.norm(jax.nn.gelu(self.dense(h), approximate=False))
    return L.einsum("bld,vd->blv", x, word_embeddings_VxD, x.dtype) + self.bias[...].astype(x.dtype)


def _xent(logits, labels, mask):
  logits = logits.astype(jnp.float32)
  per = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.where(mask, labels, 0))
  mask = mask.astype(jnp.float32)
  return (per * mask).sum(), mask.sum()


def loss_terms(head_type: str, logits, batch, z_loss: float = 0.0) -> tuple[jax.Array, jax.Array]:
  """(summed loss, number of terms) so that losses average correctly over accumulation and hosts.

  Batches carry `example_mask` [B] (0 for padding rows added to fill a batch). `z_loss` applies
  to `text_to_text` only (see `xtjax.models.seq2seq_loss`).
  """
  ex = batch["example_mask"].astype(bool)
  if head_type == "text_to_text":
    return seq2seq_loss.loss_terms(logits, batch["labels"], ex, z_loss)
  if head_type in ("classification", "multiple_choice"):
    return _xent(logits, batch["labels"], ex)
  if head_type == "span":
    start, end = logits
    s, n = _xent(start, batch["start_positions"], ex)
    e, _ = _xent(end, batch["end_positions"], ex)
    return (s + e) / 2.0, n
  if head_type in ("tagging", "mlm"):
    labels = batch["labels"]
    return _xent(logits, labels, (labels != IGNORE) & ex[:, None])
  raise ValueError(head_type)
