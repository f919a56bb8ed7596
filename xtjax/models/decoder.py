"""Decoder-only LLMs of the Llama family (Llama 2/3.x, Qwen2/2.5, Mistral) as config switches.

Pre-RMSNorm blocks, SwiGLU feed-forward, rotary position embeddings (plain, linear, Llama-3 or
YaRN frequency scaling), grouped-query attention, optional q/k/v biases (Qwen2) and a sliding
attention window (Mistral). Projections are `layers.Dense` with 2-d [in, out] kernels, the form
LoRA adapters attach to. Padding may sit on either side: positions count the real tokens
(as transformers' `generate` makes them), and keys outside `attention_mask` are never attended.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from xtjax.models import layers as L
from xtjax.models import remat as R
from xtjax.models.attention import attention, check_impl
from xtjax.models.attention_kernels import MaskSpec
from xtjax.models.family import ModelConfig
from xtjax.models.layer_flops import decoder_layer_flops
from xtjax.models.scan import check_remat, make_layers, run_layers, use_scan
from xtjax.models.t5 import RMSNorm
from xtjax.parallel.rules import constrain

ROPE_TYPES = ("default", "linear", "llama3", "yarn")


@dataclasses.dataclass(frozen=True)
class DecoderConfig(ModelConfig):
  kind = "causal"
  vocab_size: int = 32000
  hidden_size: int = 4096
  num_layers: int = 32
  num_heads: int = 32
  num_kv_heads: int = 32  # grouped-query attention: each key/value head serves num_heads / num_kv_heads queries
  head_dim: int = 0  # 0: hidden_size // num_heads
  intermediate_size: int = 11008
  max_position_embeddings: int = 4096
  rms_norm_eps: float = 1e-6
  hidden_act: str = "silu"
  rope_theta: float = 10000.0
  rope_type: str = "default"  # default | linear | llama3 | yarn (transformers' rope_parameters["rope_type"])
  rope_factor: float = 1.0  # linear / llama3 / yarn scaling factor
  rope_low_freq_factor: float = 1.0  # llama3
  rope_high_freq_factor: float = 4.0  # llama3
  rope_original_max_position_embeddings: int = 0  # llama3 / yarn pre-training context; 0: max_position_embeddings
  rope_beta_fast: float = 32.0  # yarn
  rope_beta_slow: float = 1.0  # yarn
  rope_attention_factor: float = 0.0  # yarn: cos/sin scale; 0: 0.1 * ln(factor) + 1
  rope_truncate: bool = True  # yarn: round the correction range to whole dimensions
  attention_bias: bool = False  # biases on the q, k, v projections (Qwen2; Llama's attention_bias)
  attention_out_bias: bool = False  # bias on the output projection (Llama's attention_bias)
  mlp_bias: bool = False
  sliding_window: int = 0  # Mistral: a query sees at most this many keys back, itself included (0: no window)
  attention_dropout_rate: float = 0.0
  tie_word_embeddings: bool = False
  # False: built without its (untied) LM head, for runs whose heads never read the LM logits (`for_heads`)
  with_lm_head: bool = True
  pad_token_id: int | None = None  # None (Llama): generation pads with the first EOS id
  bos_token_id: int | None = 1
  eos_token_ids: tuple[int, ...] = (2,)  # generation stops at any of them (Llama 3 instruct has several)
  initializer_range: float = 0.02
  model_type: str = "llama"  # Hugging Face model_type used on export: llama | qwen2 | mistral
  dtype: str = "float32"  # compute dtype
  param_dtype: str = "float32"
  # Layers stored stacked and run as one lax.scan (compiles one layer; xtjax.models.scan); None: on from 12 layers.
  scan_layers: bool | None = None
  remat: str = "none"  # a policy of xtjax.models.remat: none | full | minimal_with_context | ...
  attention_impl: str = "xla"  # xla | dot_product | pallas | auto (xtjax.models.attention)

  def __post_init__(self):
    object.__setattr__(self, "eos_token_ids", tuple(int(t) for t in self.eos_token_ids))  # JSON gives lists
    check_remat(self.remat)
    check_impl(self.attention_impl)
    if self.num_heads % self.num_kv_heads:
      raise ValueError(f"num_heads {self.num_heads} is not divisible by num_kv_heads {self.num_kv_heads}")
    if not self.head_dim and self.hidden_size % self.num_heads:
      raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}; "
                       "give head_dim")
    if self.rope_type not in ROPE_TYPES:
      raise ValueError(f"rope_type must be one of {list(ROPE_TYPES)}, got {self.rope_type!r}")
    if not self.head_dim:  # stored explicitly, so a config read back from its export compares equal
      object.__setattr__(self, "head_dim", self.hidden_size // self.num_heads)
    if self.head_dim % 2:
      raise ValueError(f"head_dim {self.head_dim} must be even for rotary embeddings")
    if not self.eos_token_ids:
      raise ValueError("eos_token_ids must name at least one token")
    L.activation(self.hidden_act)
    L.to_dtype(self.dtype)
    L.to_dtype(self.param_dtype)

  @property
  def stacked_layers(self) -> bool:
    return use_scan(self.scan_layers, self.num_layers)

  @property
  def generation_pad_id(self) -> int:
    return self.eos_token_ids[0] if self.pad_token_id is None else self.pad_token_id

  # ---- the ModelConfig interface ----
  @property
  def pad_id(self) -> int:
    return self.pad_token_id or 0  # attention-masked, so any id serves (Llama has none)

  @property
  def generates(self) -> bool:
    return self.with_lm_head or self.tie_word_embeddings

  left_pad_prompts = True

  def for_heads(self, lm_logits: bool) -> DecoderConfig:
    return self if lm_logits or self.tie_word_embeddings else dataclasses.replace(self, with_lm_head=False)

  @property
  def lm_part_left_out(self) -> bool:
    return not self.generates

  def for_saved_params(self, encoder_tree) -> DecoderConfig:
    return self if self.tie_word_embeddings else dataclasses.replace(self, with_lm_head="lm_head" in encoder_tree)

  @property
  def prompt_pad_id(self) -> int:
    return self.generation_pad_id

  @property
  def filler_id(self) -> int:
    return self.generation_pad_id

  def layer_flops(self, tokens: int, keys: int) -> int:
    """One layer: `tokens` new positions attending to `keys` positions."""
    return decoder_layer_flops(self.hidden_size, self.intermediate_size, self.num_heads * self.head_dim,
                               self.num_kv_heads * self.head_dim, tokens, keys)

  def stack_flops(self, length: int, first_token_only: bool = False) -> int:
    return self.num_layers * self.layer_flops(length, length)  # hidden states of every position, no LM head

  def text_to_text_flops(self, length: int, target_length: int) -> int:
    # `causal_lm.py`: [prompt | target] through the stack, the LM head on the target's T positions only.
    n = length + target_length
    return self.num_layers * self.layer_flops(n, n) + 2 * target_length * self.hidden_size * self.vocab_size

  def generate_flops(self, length: int, new_tokens: int) -> int:
    # A prefill over the prompt (attending to the whole cache of prompt + new tokens, LM head on the last
    # position), then one cached step per further token.
    cache, head = length + new_tokens, 2 * self.hidden_size * self.vocab_size
    step = self.num_layers * self.layer_flops(1, cache) + head
    prefill = self.num_layers * self.layer_flops(length, cache) + head
    return prefill + (new_tokens - 1) * step


def rope_frequencies(cfg: DecoderConfig) -> tuple[np.ndarray, float]:
  """(inverse frequencies [head_dim / 2] float32, cos/sin scale), as transformers' ROPE_INIT_FUNCTIONS."""
  dim = cfg.head_dim
  base = cfg.rope_theta
  exponents = np.arange(0, dim, 2, dtype=np.int64).astype(np.float32) / np.float32(dim)
  pos_freqs = np.float32(base) ** exponents
  inv_freq = (np.float32(1.0) / pos_freqs).astype(np.float32)
  factor = np.float32(cfg.rope_factor)
  old_ctx = cfg.rope_original_max_position_embeddings or cfg.max_position_embeddings
  if cfg.rope_type == "linear":
    return inv_freq / factor, 1.0
  if cfg.rope_type == "llama3":
    low_wavelen = old_ctx / cfg.rope_low_freq_factor
    high_wavelen = old_ctx / cfg.rope_high_freq_factor
    wavelen = np.float32(2 * math.pi) / inv_freq
    scaled = np.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
    smooth = (np.float32(old_ctx) / wavelen - cfg.rope_low_freq_factor) / (
        cfg.rope_high_freq_factor - cfg.rope_low_freq_factor)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
    return np.where(medium, smoothed, scaled).astype(np.float32), 1.0
  if cfg.rope_type == "yarn":
    attention = cfg.rope_attention_factor or (0.1 * math.log(cfg.rope_factor) + 1.0 if cfg.rope_factor > 1 else 1.0)

    def correction_dim(rotations):
      return (dim * math.log(old_ctx / (rotations * 2 * math.pi))) / (2 * math.log(base))

    low, high = correction_dim(cfg.rope_beta_fast), correction_dim(cfg.rope_beta_slow)
    if cfg.rope_truncate:
      low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
      high += 0.001
    ramp = np.clip((np.arange(dim // 2, dtype=np.float32) - np.float32(low)) / np.float32(high - low), 0, 1)
    extrapolation = 1 - ramp
    interpolation = np.float32(1.0) / (factor * pos_freqs)
    return (interpolation * (1 - extrapolation) + inv_freq * extrapolation).astype(np.float32), float(attention)
  return inv_freq, 1.0


def rotary(cfg: DecoderConfig, positions_BxT):
  """cos, sin [B, T, head_dim] float32 for the given positions (both halves of the head share a frequency)."""
  inv_freq, scale = rope_frequencies(cfg)
  angles = positions_BxT.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq)[None, None, :]
  angles = jnp.concatenate([angles, angles], axis=-1)
  return jnp.cos(angles) * scale, jnp.sin(angles) * scale


def apply_rotary(x_BxTxNxK, cos_BxTxK, sin_BxTxK):
  """x * cos + rotate_half(x) * sin in float32 (transformers' `apply_rotary_pos_emb`)."""
  x = x_BxTxNxK.astype(jnp.float32)
  half = x.shape[-1] // 2
  rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
  return (x * cos_BxTxK[:, :, None] + rotated * sin_BxTxK[:, :, None]).astype(x_BxTxNxK.dtype)


# Under `activation_sharding` (generation programs are traced under it) the cache is split like the layers'
# activations: rows over the batch axes, key/value heads over `tensor`.
KV_CACHE_AXES = ("layers", "batch", "length", "kv_heads", "kv")


class KVCache(NamedTuple):
  """Keys/values of every layer for S slots, filled up to `index`. Stacked along a leading layer axis
  (either layer layout), so a stacked model's layer scan carries them and writes each step's slots in place."""

  keys: jax.Array  # [num_layers, B, S, num_kv_heads, head_dim]
  values: jax.Array  # [num_layers, B, S, num_kv_heads, head_dim]
  valid: jax.Array  # [B, S] bool: slot holds a real token (prompt padding stays False)
  positions: jax.Array  # [B, S] int32: rotary position of each slot's token (for the sliding window)
  index: jax.Array  # int32 scalar: slot of the next input token
  next_position: jax.Array  # [B] int32: rotary position of the next real token


class DecoderOutput(NamedTuple):
  logits: jax.Array | None  # [B, T, V] float32 (None when not asked for)
  last_hidden_state: jax.Array  # [B, T, D] final-norm output
  # num_layers + 1, as transformers' `hidden_states`: embedding output, layers 1..n-1, then the final-norm output
  hidden_states: tuple[jax.Array, ...]
  cache: KVCache | None  # the advanced cache when one was given


class Slots(NamedTuple):
  """Where T new tokens go in a causal pass (`causal_slots`): their positions, and which slots each may attend."""

  mask: jax.Array  # [B, T] bool: real tokens
  start: jax.Array  # [B] int32: rotary position of the first new real token
  positions: jax.Array  # [B, T] int32
  index: jax.Array  # int32 scalar: slot of the first new token
  valid: jax.Array  # [B, S] bool: slots holding a real token (S = T without a cache)
  key_positions: jax.Array  # [B, S] int32: rotary position of each slot's token
  allowed: jax.Array  # [B, T, S] bool: causal and valid

  def advanced(self, keys, values) -> KVCache:
    """The cache after this pass, holding the given stacked keys and values."""
    T = self.mask.shape[1]
    return KVCache(keys, values, self.valid, self.key_positions, self.index + T,
                   self.start + self.mask.sum(1, dtype=jnp.int32))


def causal_slots(input_ids_BxT, attention_mask_BxT=None, positions_BxT=None, cache: KVCache | None = None) -> Slots:
  """`positions_BxT` default: the count of real tokens before each one (left or right padding alike).
  With `cache`: the tokens fill slots cache.index.. and attend to every valid earlier slot."""
  B, T = input_ids_BxT.shape
  mask = jnp.ones((B, T), bool) if attention_mask_BxT is None else attention_mask_BxT > 0
  start = jnp.zeros((B,), jnp.int32) if cache is None else cache.next_position
  if positions_BxT is None:
    positions_BxT = start[:, None] + jnp.maximum(jnp.cumsum(mask, axis=1, dtype=jnp.int32) - 1, 0)
  positions_BxT = positions_BxT.astype(jnp.int32)
  if cache is None:
    index, valid_BxS, key_pos_BxS = jnp.zeros((), jnp.int32), mask, positions_BxT
  else:
    index = cache.index
    valid_BxS = jax.lax.dynamic_update_slice(cache.valid, mask, (0, index))
    key_pos_BxS = jax.lax.dynamic_update_slice(cache.positions, positions_BxT, (0, index))
  query_slots = index + jnp.arange(T, dtype=jnp.int32)
  key_slots = jnp.arange(valid_BxS.shape[1], dtype=jnp.int32)
  allowed_BxTxS = (key_slots[None, :] <= query_slots[:, None])[None] & valid_BxS[:, None, :]
  return Slots(mask, start, positions_BxT, index, valid_BxS, key_pos_BxS, allowed_BxTxS)


def _kw(cfg: DecoderConfig, rngs, stddev=None):
  return dict(rngs=rngs, dtype=L.to_dtype(cfg.dtype), param_dtype=L.to_dtype(cfg.param_dtype),
              stddev=cfg.initializer_range if stddev is None else stddev)


class Attention(nnx.Module):
  """Grouped-query attention; query head h reads key/value head h // (num_heads / num_kv_heads)."""

  def __init__(self, cfg: DecoderConfig, rngs):
    D, H, N, K = cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    self.q = L.Dense(D, H * K, ("embed", "heads"), use_bias=cfg.attention_bias, remat_names=(None, R.QUERY),
                     **_kw(cfg, rngs))
    self.k = L.Dense(D, N * K, ("embed", "kv_heads"), use_bias=cfg.attention_bias, remat_names=(None, R.KEY),
                     **_kw(cfg, rngs))
    self.v = L.Dense(D, N * K, ("embed", "kv_heads"), use_bias=cfg.attention_bias, remat_names=(None, R.VALUE),
                     **_kw(cfg, rngs))
    self.o = L.Dense(H * K, D, ("heads", "embed"), use_bias=cfg.attention_out_bias, remat_names=(R.CONTEXT, R.OUT),
                     **_kw(cfg, rngs))
    self.cfg = cfg

  def __call__(self, x_BxTxD, cos, sin, allowed_BxTxS, kv_cache=None, index=None, dropout_key=None,
               spec: MaskSpec | None = None):
    """Returns (output [B, T, D], this call's (keys, values) [B, T, N, K] for the cache, or None).

    `kv_cache`: this layer's (keys, values) [B, S, N, K]; the new ones are attended at slots index.. (the
    caller writes them into its cache). `spec`: `allowed_BxTxS` in structural form (fused kernels)."""
    cfg = self.cfg
    dt = L.to_dtype(cfg.dtype)
    B, T, _ = x_BxTxD.shape
    H, N, K = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    key = lambda i: L.fold(dropout_key, i)  # LoRA adapters' dropout; the attention probabilities use dropout_key
    q = apply_rotary(self.q(x_BxTxD, key(1)).reshape(B, T, N, H // N, K), cos[:, :, None], sin[:, :, None])
    k = apply_rotary(self.k(x_BxTxD, key(2)).reshape(B, T, N, K), cos, sin)
    v = self.v(x_BxTxD, key(3)).reshape(B, T, N, K)
    new_cache = None
    if kv_cache is not None:  # this call's keys/values at `index`, attend over every slot
      ck, cv = kv_cache
      new_cache = (k.astype(ck.dtype), v.astype(cv.dtype))
      k = jax.lax.dynamic_update_slice(ck, new_cache[0], (0, index, 0, 0))
      v = jax.lax.dynamic_update_slice(cv, new_cache[1], (0, index, 0, 0))
    ctx = attention(q, k, v, dtype=dt, scale=K ** -0.5, mask=allowed_BxTxS, dropout_rate=cfg.attention_dropout_rate,
                    dropout_key=dropout_key, impl=cfg.attention_impl, spec=spec)
    return self.o(ctx.reshape(B, T, H * K), key(4)), new_cache


class MLP(nnx.Module):
  """SwiGLU: down(act(gate(x)) * up(x))."""

  def __init__(self, cfg: DecoderConfig, rngs):
    D, F = cfg.hidden_size, cfg.intermediate_size
    self.gate = L.Dense(D, F, ("embed", "mlp"), use_bias=cfg.mlp_bias, remat_names=(None, R.MLP_IN_0), **_kw(cfg, rngs))
    self.up = L.Dense(D, F, ("embed", "mlp"), use_bias=cfg.mlp_bias, remat_names=(None, R.MLP_IN_1), **_kw(cfg, rngs))
    self.down = L.Dense(F, D, ("mlp", "embed"), use_bias=cfg.mlp_bias, remat_names=(None, R.MLP_OUT), **_kw(cfg, rngs))
    self.act = L.activation(cfg.hidden_act)

  def __call__(self, x, dropout_key=None):  # dropout_key: for LoRA adapters' dropout
    key = lambda i: L.fold(dropout_key, i)
    return self.down(self.act(self.gate(x, key(0))) * self.up(x, key(1)), key(2))


class Layer(nnx.Module):

  def __init__(self, cfg: DecoderConfig, rngs):
    norm_kw = dict(rngs=rngs, dtype=L.to_dtype(cfg.dtype), param_dtype=L.to_dtype(cfg.param_dtype))
    self.attention_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, **norm_kw)
    self.attention = Attention(cfg, rngs)
    self.mlp_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, **norm_kw)
    self.mlp = MLP(cfg, rngs)

  def __call__(self, x, cos, sin, allowed, kv_cache=None, index=None, dropout_key=None, spec: MaskSpec | None = None):
    h, new_cache = self.attention(self.attention_norm(x), cos, sin, allowed, kv_cache, index, dropout_key, spec)
    x = x + h
    return x + self.mlp(self.mlp_norm(x), L.fold(dropout_key, 5)), new_cache


class Decoder(nnx.Module):
  """Token embedding, `num_layers` pre-norm blocks, final RMSNorm and the LM head (tied or not)."""

  def __init__(self, cfg: DecoderConfig, rngs: nnx.Rngs):
    self.cfg = cfg
    rngs = L.KeySequence(rngs)
    pdt = L.to_dtype(cfg.param_dtype)
    self.embed = L.param(rngs, L.normal(cfg.initializer_range), (cfg.vocab_size, cfg.hidden_size),
                         ("vocab", "embed"), pdt)
    self.layers = make_layers([Layer(cfg, rngs) for _ in range(cfg.num_layers)], cfg.stacked_layers)
    self.final_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, rngs=rngs, dtype=L.to_dtype(cfg.dtype),
                              param_dtype=pdt)
    self.lm_head = (None if cfg.tie_word_embeddings or not cfg.with_lm_head else
                    L.Dense(cfg.hidden_size, cfg.vocab_size, ("embed", "vocab"), use_bias=False, **_kw(cfg, rngs)))

  def init_cache(self, batch_size: int, max_length: int) -> KVCache:
    """An empty cache of `max_length` slots (prompt plus new tokens)."""
    cfg = self.cfg
    zeros = constrain(jnp.zeros((cfg.num_layers, batch_size, max_length, cfg.num_kv_heads, cfg.head_dim),
                                L.to_dtype(cfg.dtype)), KV_CACHE_AXES, "KV cache")
    slots = lambda dtype: constrain(jnp.zeros((batch_size, max_length), dtype), ("batch", "length"), "KV cache slots")
    return KVCache(zeros, zeros, slots(bool), slots(jnp.int32), jnp.zeros((), jnp.int32),
                   constrain(jnp.zeros((batch_size,), jnp.int32), ("batch",), "KV cache positions"))

  def logits(self, hidden_BxTxD):
    dt = L.to_dtype(self.cfg.dtype)
    if not self.cfg.generates:
      raise ValueError("this decoder was built without its LM head (with_lm_head=False: the heads of the run "
                       "that saved it never read the LM logits); load the pretrained checkpoint for LM logits")
    if self.lm_head is None:
      return L.einsum("btd,vd->btv", hidden_BxTxD, self.embed[...], dt, jnp.float32)
    return L.project(self.lm_head, "kernel", "btd,dv->btv", hidden_BxTxD, dt, None, jnp.float32)

  def encoder_outputs(self, input_ids_BxT, attention_mask_BxT=None, token_type_ids_BxT=None, *,
                      dropout_key: jax.Array | None = None, first_tokens: int | None = None) -> DecoderOutput:
    """The stack's hidden states without logits, as encoders give them (`embed.encoder_outputs`:
    task heads, retrieval, `xtjax embed`); decoders have no token types, and heads read the last token."""
    del token_type_ids_BxT, first_tokens
    return self(input_ids_BxT, attention_mask_BxT, with_logits=False, dropout_key=dropout_key)

  def __call__(self, input_ids_BxT, attention_mask_BxT=None, positions_BxT=None, *, cache: KVCache | None = None,
               with_logits: bool = True, dropout_key: jax.Array | None = None) -> DecoderOutput:
    """Causal forward pass over T tokens.

    `positions_BxT` default: the count of real tokens before each one (left or right padding alike).
    With `cache`: the tokens fill slots cache.index.., attend to every valid earlier slot, and the
    cache comes back advanced (prefill with the whole prompt, then one token per call).
    """
    cfg = self.cfg
    slots = causal_slots(input_ids_BxT, attention_mask_BxT, positions_BxT, cache)
    positions_BxT, index, key_pos_BxS, allowed_BxTxS = slots.positions, slots.index, slots.key_positions, slots.allowed
    if cfg.sliding_window:  # in positions, so padding inside the cache (right-padded prompts) does not count
      allowed_BxTxS &= key_pos_BxS[:, None, :] > positions_BxT[:, :, None] - cfg.sliding_window
    cos, sin = rotary(cfg, positions_BxT)
    x = embedded = jnp.take(self.embed[...], input_ids_BxT, axis=0).astype(L.to_dtype(cfg.dtype))
    if cache is None:
      spec = MaskSpec(slots.valid, causal=True, window=cfg.sliding_window)

      def call(layer, h, i):
        return layer(h, cos, sin, allowed_BxTxS, dropout_key=L.fold(dropout_key, i), spec=spec)[0]

      x, hidden = run_layers(self.layers, x, call, remat=cfg.remat)
      new_cache = None
    else:  # inference: the stacked cache rides along with the hidden states (one scan when stacked)
      def cached(layer, carry, i):
        h, keys, values = carry
        own = (jax.lax.dynamic_index_in_dim(keys, i, 0, False), jax.lax.dynamic_index_in_dim(values, i, 0, False))
        h, (k, v) = layer(h, cos, sin, allowed_BxTxS, own, index)
        at = (jnp.asarray(i, jnp.int32), 0, index, 0, 0)  # only this call's slots are written
        return h, jax.lax.dynamic_update_slice(keys, k[None], at), jax.lax.dynamic_update_slice(values, v[None], at)

      (x, keys, values), hidden = run_layers(self.layers, (x, cache.keys, cache.values), cached,
                                             keep=lambda carry: carry[0])
      new_cache = slots.advanced(keys, values)
    last = self.final_norm(x)
    hidden = (embedded,) + tuple(hidden[:-1]) + (last,)
    return DecoderOutput(self.logits(last) if with_logits else None, last, hidden, new_cache)
