"""T5 / mT5 / umT5 encoder-decoder: pre-layer-norm blocks with RMS norms, relative position buckets
and no biases anywhere.

Unlike the BERT-style encoder: scores are not divided by sqrt(d_kv) (the scale is in `q`'s init);
positions enter only as a learned bias per (relative-position bucket, head), computed in the first
layer and shared (umT5: one per layer); T5 v1.0 ties the LM head and scales the decoder output by
d_model**-0.5, mT5 / T5 v1.1 / umT5 have an untied head. Task heads need only the encoder:
`T5.encode` / `T5.encoder_outputs` (as `Encoder.__call__`); `encoder_only=True` builds no decoder.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from xtjax.models import layers as L
from xtjax.models.encoder import EncoderOutput
from xtjax.models.scan import layer_at, make_layers, run_layers
from xtjax.models.t5_blocks import _NEG, DecoderLayer, EncoderLayer, RMSNorm, _kw
from xtjax.models.t5_blocks import relative_position_bucket  # noqa: F401 (part of this module's interface)
from xtjax.models.t5_config import MODEL_TYPES, T5Config  # noqa: F401 (part of this module's interface)
from xtjax.parallel.rules import constrain, vocab_parallel


class DecodeCache(NamedTuple):
  """Per decoder layer: self-attention keys/values [B, max_len, H, K] filled up to `index`, and the
  cross-attention keys/values [B, S, H, K] computed once from the encoder output."""

  self_keys: tuple[jax.Array, ...]
  self_values: tuple[jax.Array, ...]
  cross_keys: tuple[jax.Array, ...]
  cross_values: tuple[jax.Array, ...]
  index: jax.Array  # int32 scalar: decoder position of the next input token


class Segments(NamedTuple):
  """Packed rows (T5X, `xtjax.data.packing`): segment ids [B, L] / [B, T] (1..n per row, 0 for padding) and
  positions restarting at 0 in each segment. Encoder and decoder self-attention stay inside a segment,
  target segment k attends input segment k, and relative positions are counted within the segment."""

  inputs_segment_ids: jax.Array
  inputs_positions: jax.Array
  targets_segment_ids: jax.Array
  targets_positions: jax.Array


def _same_segment_BxQxS(query_seg_BxQ, key_seg_BxS):
  return (query_seg_BxQ[:, :, None] == key_seg_BxS[:, None, :]) & (key_seg_BxS[:, None, :] > 0)


class DecodeOutput(NamedTuple):
  logits: jax.Array  # [B, T, V] float32
  cache: DecodeCache | None  # the advanced cache when one was given


def _layers(cfg: T5Config, rngs, cls, n: int):
  # The relative position bias lives in the first layer (shared by all) or in every layer (umT5);
  # stacked, a first layer of another structure stays apart.
  layers = [cls(cfg, rngs, relative_bias=(i == 0 or cfg.per_layer_position_bias)) for i in range(n)]
  return make_layers(layers, cfg.stacked_layers, first=0 if cfg.per_layer_position_bias else 1)


class EncoderStack(nnx.Module):

  def __init__(self, cfg: T5Config, rngs: nnx.Rngs):
    self.layers = _layers(cfg, rngs, EncoderLayer, cfg.num_layers)
    self.final_norm = RMSNorm(cfg.d_model, cfg.layer_norm_epsilon, **_kw(cfg, rngs))
    self.cfg = cfg

  def __call__(self, x_BxLxD, attention_mask_BxL, dropout_key=None, segments: Segments | None = None):
    """(final-norm output, hidden states: embedding output, layers 1..n-1, final-norm output)."""
    if segments is None:
      pos = jnp.arange(x_BxLxD.shape[1], dtype=jnp.int32)
      mask_bias = jnp.where(attention_mask_BxL[:, None, None, :] > 0, 0.0, _NEG).astype(jnp.float32)
    else:  # packed rows: attention within a segment, positions per segment
      pos, seg = segments.inputs_positions, segments.inputs_segment_ids
      mask_bias = jnp.where(_same_segment_BxQxS(seg, seg)[:, None], 0.0, _NEG).astype(jnp.float32)

    def bias_of(layer):
      return layer.attention.position_bias(pos, pos, bidirectional=True) + mask_bias

    shared = None if self.cfg.per_layer_position_bias else bias_of(layer_at(self.layers, 0))
    x, hidden = run_layers(self.layers, x_BxLxD, lambda layer, h, i: layer(
        h, bias_of(layer) if shared is None else shared, L.fold(dropout_key, i)), remat=self.cfg.remat)
    hidden = [x_BxLxD] + hidden
    x = L.dropout(self.final_norm(x), self.cfg.dropout_rate, L.fold(dropout_key, len(self.layers)))
    hidden[-1] = x  # as transformers: the last hidden state is the final-norm output
    return x, tuple(hidden)


class DecoderStack(nnx.Module):

  def __init__(self, cfg: T5Config, rngs: nnx.Rngs):
    self.layers = _layers(cfg, rngs, DecoderLayer, cfg.num_decoder_layers)
    self.final_norm = RMSNorm(cfg.d_model, cfg.layer_norm_epsilon, **_kw(cfg, rngs))
    self.cfg = cfg

  def __call__(self, x_BxTxD, self_mask_BxTxS, query_pos_T, key_pos_S, cross_bias_Bx1x1xS, encoder_hidden_BxSxD,
               cross_kvs=None, self_kv_caches=None, index=None, dropout_key=None):
    """Teacher forcing (no caches): every layer's cross keys/values from `encoder_hidden_BxSxD`, the
    layers run by `run_layers` (scanned when stacked). Decoding: `cross_kvs` and `self_kv_caches` per layer."""

    def bias_of(layer):
      pos_bias = layer.self_attention.position_bias(query_pos_T, key_pos_S, bidirectional=False)
      return jnp.where(self_mask_BxTxS[:, None], pos_bias, _NEG)

    shared = None if self.cfg.per_layer_position_bias else bias_of(layer_at(self.layers, 0))
    if self_kv_caches is None:
      def call(layer, h, i):
        key = L.fold(dropout_key, i)  # the layer's; its cross keys/values (LoRA dropout) take index 9 of it
        cross_kv = layer.cross_attention.key_value(encoder_hidden_BxSxD, L.fold(key, 9))
        bias = bias_of(layer) if shared is None else shared
        return layer(h, bias, cross_bias_Bx1x1xS, cross_kv, None, index, key)[0]

      x_BxTxD, _ = run_layers(self.layers, x_BxTxD, call, remat=self.cfg.remat)
      new_caches = [None] * len(self.layers)
    else:
      new_caches = []
      for i in range(len(self.layers)):
        layer = layer_at(self.layers, i)
        bias = bias_of(layer) if shared is None else shared
        x_BxTxD, cache = layer(x_BxTxD, bias, cross_bias_Bx1x1xS, cross_kvs[i], self_kv_caches[i], index,
                               L.fold(dropout_key, i))
        new_caches.append(cache)
    x = L.dropout(self.final_norm(x_BxTxD), self.cfg.dropout_rate, L.fold(dropout_key, len(self.layers)))
    return x, new_caches


class T5(nnx.Module):
  """Shared embedding, encoder, decoder and LM head (`encoder_only`: embedding and encoder only)."""

  def __init__(self, cfg: T5Config, rngs: nnx.Rngs):
    pdt = L.to_dtype(cfg.param_dtype)
    V, D, f = cfg.vocab_size, cfg.d_model, cfg.initializer_factor
    rngs = L.KeySequence(rngs)
    self.cfg = cfg
    self.shared = L.param(rngs, L.normal(f * 1.0), (V, D), ("vocab", "embed"), pdt)
    self.encoder = EncoderStack(cfg, rngs)
    self.decoder = DecoderStack(cfg, rngs) if not cfg.encoder_only else None
    self.lm_head = (L.param(rngs, L.normal(f * 1.0), (D, V), ("embed", "vocab"), pdt)
                    if not (cfg.encoder_only or cfg.tie_word_embeddings) else None)

  def _embed(self, ids_BxL, dropout_key):
    x = jnp.take(self.shared[...], ids_BxL, axis=0).astype(L.to_dtype(self.cfg.dtype))
    return L.dropout(x, self.cfg.dropout_rate, dropout_key)

  def encoder_outputs(self, input_ids_BxL, attention_mask_BxL=None, token_type_ids_BxL=None, *,
                      dropout_key: jax.Array | None = None, first_tokens: int | None = None,
                      segments: Segments | None = None) -> EncoderOutput:
    """The encoder with `Encoder.__call__`'s signature (T5 has no token types; no pooler; every position
    is computed whatever `first_tokens`); `segments`: packed rows."""
    del token_type_ids_BxL, first_tokens
    if attention_mask_BxL is None:
      attention_mask_BxL = jnp.ones_like(input_ids_BxL)
    x = self._embed(input_ids_BxL, L.fold(dropout_key, 0))
    last, hidden = self.encoder(x, attention_mask_BxL, L.fold(dropout_key, 1), segments)
    return EncoderOutput(last, hidden, None)

  def encode(self, input_ids_BxL, attention_mask_BxL=None, dropout_key: jax.Array | None = None,
             segments: Segments | None = None):
    """Encoder final-norm output [B, L, D]; what task heads and the decoder's cross attention read."""
    return self.encoder_outputs(input_ids_BxL, attention_mask_BxL, dropout_key=dropout_key,
                                segments=segments).last_hidden_state

  def _check_decoder(self):
    if self.decoder is None:
      raise ValueError("this T5 model was built with encoder_only=True: it has no decoder")

  def init_cache(self, encoder_hidden_BxSxD, max_decode_length: int) -> DecodeCache:
    """An empty self-attention cache of `max_decode_length` positions and the cross keys/values."""
    self._check_decoder()
    cfg = self.cfg
    B = encoder_hidden_BxSxD.shape[0]
    zeros = constrain(jnp.zeros((B, max_decode_length, cfg.num_heads, cfg.d_kv), L.to_dtype(cfg.dtype)),
                      ("batch", "length", "heads", "kv"), "decoder self-attention cache")
    n = len(self.decoder.layers)
    cross = [layer_at(self.decoder.layers, i).cross_attention.key_value(encoder_hidden_BxSxD) for i in range(n)]
    return DecodeCache((zeros,) * n, (zeros,) * n, tuple(k for k, _ in cross), tuple(v for _, v in cross),
                       jnp.zeros((), jnp.int32))

  def decode(self, decoder_input_ids_BxT, encoder_hidden_BxSxD, encoder_mask_BxS, cache: DecodeCache | None = None,
             decoder_attention_mask_BxT=None, dropout_key: jax.Array | None = None,
             segments: Segments | None = None) -> DecodeOutput:
    """Decoder logits [B, T, V] (f32).

    Without `cache`: teacher forcing over the whole target (causal mask, optional padding mask), of
    packed rows with `segments`. With `cache`: the T tokens sit at positions cache.index.. and the
    cache comes back advanced.
    """
    self._check_decoder()
    B, T = decoder_input_ids_BxT.shape
    x = self._embed(decoder_input_ids_BxT, L.fold(dropout_key, 0))
    if segments is not None:
      if cache is not None:
        raise ValueError("packed rows (segments) are for teacher forcing; decoding with a cache takes one example "
                         "per row")
      return self._decode_packed(x, encoder_hidden_BxSxD, segments, decoder_attention_mask_BxT, dropout_key)
    cross_bias = jnp.where(encoder_mask_BxS[:, None, None, :] > 0, 0.0, _NEG).astype(jnp.float32)
    if cache is None:
      index = jnp.zeros((), jnp.int32)
      key_pos = jnp.arange(T, dtype=jnp.int32)
      cross_kvs = self_kvs = None
    else:
      index = cache.index
      key_pos = jnp.arange(cache.self_keys[0].shape[1], dtype=jnp.int32)
      cross_kvs = list(zip(cache.cross_keys, cache.cross_values))
      self_kvs = list(zip(cache.self_keys, cache.self_values))
    query_pos = index + jnp.arange(T, dtype=jnp.int32)
    mask = jnp.broadcast_to(key_pos[None, None, :] <= query_pos[None, :, None], (B, T, key_pos.shape[0]))
    if decoder_attention_mask_BxT is not None and cache is None:
      mask = mask & (decoder_attention_mask_BxT[:, None, :] > 0)
    x, new_kvs = self.decoder(x, mask, query_pos, key_pos, cross_bias, encoder_hidden_BxSxD, cross_kvs, self_kvs,
                              index, L.fold(dropout_key, 1))
    logits = self.logits(x)
    if cache is None:
      return DecodeOutput(logits, None)
    return DecodeOutput(logits, cache._replace(self_keys=tuple(k for k, _ in new_kvs),
                                               self_values=tuple(v for _, v in new_kvs), index=index + T))

  def _decode_packed(self, x_BxTxD, encoder_hidden_BxSxD, segments: Segments, decoder_attention_mask_BxT,
                     dropout_key) -> DecodeOutput:
    """Teacher forcing over packed rows: causal within a target segment, target segment k reading input
    segment k, relative positions from `targets_positions`."""
    tseg, iseg = segments.targets_segment_ids, segments.inputs_segment_ids
    T = tseg.shape[1]
    cross_bias = jnp.where(_same_segment_BxQxS(tseg, iseg)[:, None], 0.0, _NEG).astype(jnp.float32)
    rows = jnp.arange(T, dtype=jnp.int32)
    mask = (rows[None, None, :] <= rows[None, :, None]) & _same_segment_BxQxS(tseg, tseg)
    if decoder_attention_mask_BxT is not None:
      mask = mask & (decoder_attention_mask_BxT[:, None, :] > 0)
    pos = segments.targets_positions
    x, _ = self.decoder(x_BxTxD, mask, pos, pos, cross_bias, encoder_hidden_BxSxD, None, None,
                        jnp.zeros((), jnp.int32), L.fold(dropout_key, 1))
    return DecodeOutput(self.logits(x), None)

  def logits(self, decoder_hidden_BxTxD):
    dt = L.to_dtype(self.cfg.dtype)
    x = decoder_hidden_BxTxD.astype(dt)
    if self.lm_head is None:  # tied (T5 v1.0): Mesh TensorFlow rescales before reusing the embedding
      x, w, pin = vocab_parallel(x * (self.cfg.d_model ** -0.5), self.shared[...], 0)
      return pin(L.einsum("btd,vd->btv", x, w, dt, jnp.float32))
    x, w, pin = vocab_parallel(x, self.lm_head[...], 1)
    return pin(L.einsum("btd,dv->btv", x, w, dt, jnp.float32))

  def __call__(self, input_ids_BxL, attention_mask_BxL, decoder_input_ids_BxT, decoder_attention_mask_BxT=None,
               dropout_key: jax.Array | None = None, segments: Segments | None = None):
    """Teacher-forced logits [B, T, V] (f32); `segments`: of packed rows."""
    enc = self.encode(input_ids_BxL, attention_mask_BxL, L.fold(dropout_key, 0), segments)
    return self.decode(decoder_input_ids_BxT, enc, attention_mask_BxL, None, decoder_attention_mask_BxT,
                       L.fold(dropout_key, 1), segments).logits


def shift_right(labels_BxT, cfg: T5Config, targets_positions_BxT=None):
  """Teacher-forcing decoder inputs from labels: start token first, -100 (ignored labels) as padding;
  with `targets_positions_BxT` (packed rows) the start token begins every segment."""
  shifted = jnp.concatenate([jnp.full_like(labels_BxT[:, :1], cfg.decoder_start_token_id), labels_BxT[:, :-1]], axis=1)
  if targets_positions_BxT is not None:
    shifted = jnp.where(targets_positions_BxT == 0, cfg.decoder_start_token_id, shifted)
  return jnp.where(shifted == -100, cfg.pad_token_id, shifted)
