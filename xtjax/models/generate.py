"""Greedy and beam-search decoding for T5-family models, greedy decoding for decoder-only LLMs, each
one jitted function.

The encoder runs once, cross-attention keys/values are computed once, the decoder's self-attention
keys/values go into a preallocated cache, and a `lax.while_loop` emits one token per iteration:
no Python loop per token and one compilation per (batch, input length, max_new_tokens, beams).
Both match transformers' `generate(do_sample=False)` token for token: greedy stops a row at EOS
and pads after it; beam search is a port of transformers' vectorised beam search (length penalty,
`early_stopping` False / True / "never"). Decoder-only models (Llama family) fill the cache with
the prompt in one prefill pass instead of an encoder pass; their prompts are padded on the left.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx


_NEG = -1.0e9  # transformers' "impossible" score in beam search


class GenerateOutput(NamedTuple):
  sequences: jax.Array  # [B, 1 + max_new_tokens] int32: decoder start token, generated tokens, pad after EOS
  lengths: jax.Array  # [B] int32: generated tokens per row, EOS included
  scores: jax.Array  # [B] float32: beam score (length-penalised log-probability); sum of log-probs for greedy


def generate(model, input_ids_BxL, attention_mask_BxL, *, max_new_tokens: int, num_beams: int = 1,
             length_penalty: float = 1.0, early_stopping: bool | str = False) -> GenerateOutput:
  """Decodes from a T5 or decoder-only module, or a (graphdef, params) pair, for every input row."""
  graphdef, params = model if isinstance(model, tuple) else nnx.split(model)
  if max_new_tokens < 1:
    raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
  if num_beams < 1:
    raise ValueError(f"num_beams must be >= 1, got {num_beams}")
  return _generate(graphdef, params, jnp.asarray(input_ids_BxL, jnp.int32), jnp.asarray(attention_mask_BxL, jnp.int32),
                   max_new_tokens=max_new_tokens, num_beams=num_beams, length_penalty=float(length_penalty),
                   early_stopping=early_stopping)


@functools.partial(jax.jit, static_argnames=("graphdef", "max_new_tokens", "num_beams", "length_penalty",
                                             "early_stopping"))
def _generate(graphdef, params, input_ids_BxL, attention_mask_BxL, *, max_new_tokens, num_beams, length_penalty,
              early_stopping):
  model = nnx.merge(graphdef, params)
  searches = searches_for(model.cfg)
  if num_beams == 1:
    return searches.greedy(model, input_ids_BxL, attention_mask_BxL, max_new_tokens)
  if searches.beam is None:
    raise ValueError(f"beam search is not implemented for {type(model).__name__} models; use num_beams=1")
  return searches.beam(model, input_ids_BxL, attention_mask_BxL, max_new_tokens, num_beams, length_penalty,
                       early_stopping)


def greedy_search(model, input_ids_BxL, attention_mask_BxL, max_new_tokens: int) -> GenerateOutput:
  """Argmax decoding; traceable (call under jit). Rows that produced EOS emit padding."""
  cfg = model.cfg
  B = input_ids_BxL.shape[0]
  enc = model.encode(input_ids_BxL, attention_mask_BxL)
  tokens = jnp.full((B, max_new_tokens + 1), cfg.pad_token_id, jnp.int32).at[:, 0].set(cfg.decoder_start_token_id)

  def decode_step(last_Bx1, cache):
    out = model.decode(last_Bx1, enc, attention_mask_BxL, cache=cache)
    return out.logits[:, -1], out.cache

  state = _GreedyState.start(tokens)
  return _greedy_loop(decode_step, state, model.init_cache(enc, max_new_tokens), cfg.pad_token_id,
                      (cfg.eos_token_id,), max_new_tokens)


class _GreedyState(NamedTuple):
  step: jax.Array  # int32: column of the last chosen token
  tokens: jax.Array  # [B, 1 + max_new_tokens] int32
  done: jax.Array  # [B] bool
  lengths: jax.Array  # [B] int32
  scores: jax.Array  # [B] float32

  @classmethod
  def start(cls, tokens_BxT):
    B = tokens_BxT.shape[0]
    return cls(jnp.zeros((), jnp.int32), tokens_BxT, jnp.zeros((B,), bool), jnp.zeros((B,), jnp.int32),
               jnp.zeros((B,), jnp.float32))

  def choose(self, logits_BxV, pad_id: int, eos_ids) -> _GreedyState:
    """The argmax token goes after column `step`; finished rows get padding."""
    nxt = jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)
    logp = jnp.take_along_axis(jax.nn.log_softmax(logits_BxV.astype(jnp.float32)), nxt[:, None], axis=-1)[:, 0]
    nxt = jnp.where(self.done, pad_id, nxt)
    tokens = jax.lax.dynamic_update_slice_in_dim(self.tokens, nxt[:, None], self.step + 1, axis=1)
    return _GreedyState(self.step + 1, tokens, self.done | jnp.isin(nxt, jnp.asarray(eos_ids, jnp.int32)),
                        self.lengths + (~self.done).astype(jnp.int32), self.scores + jnp.where(self.done, 0.0, logp))


def _greedy_loop(decode_step, state: _GreedyState, cache, pad_id: int, eos_ids, max_new_tokens: int) -> GenerateOutput:
  """One `while_loop`: feed the token at column `step`, choose the next, until every row is done."""

  def cond(carry):
    state, _ = carry
    return (state.step < max_new_tokens) & ~jnp.all(state.done)

  def body(carry):
    state, cache = carry
    logits_BxV, cache = decode_step(jax.lax.dynamic_slice_in_dim(state.tokens, state.step, 1, axis=1), cache)
    return state.choose(logits_BxV, pad_id, eos_ids), cache

  state, _ = jax.lax.while_loop(cond, body, (state, cache))
  return GenerateOutput(state.tokens, state.lengths, state.scores)


def decoder_greedy_search(model, input_ids_BxL, attention_mask_BxL, max_new_tokens: int) -> GenerateOutput:
  """Greedy decoding for decoder-only LLMs; traceable (call under jit).

  The prompt fills the KV cache in one prefill pass; the logits of each row's last real token (left
  or right padding) give the first new token; then one cached step per token. A row stops at any
  EOS id and is padded after it. `sequences` [B, 1 + max_new_tokens]: each row's last prompt token,
  then the generated tokens (the encoder-decoder layout, whose column 0 is the start token).
  """
  cfg = model.cfg
  B, L = input_ids_BxL.shape
  pad = cfg.generation_pad_id
  mask = attention_mask_BxL > 0
  last_B = jnp.max(jnp.where(mask, jnp.arange(L, dtype=jnp.int32)[None], 0), axis=1)  # last real token
  out = model(input_ids_BxL, attention_mask_BxL, cache=model.init_cache(B, L + max_new_tokens), with_logits=False)
  hidden_Bx1xD = jnp.take_along_axis(out.last_hidden_state, last_B[:, None, None], axis=1)
  tokens = jnp.full((B, max_new_tokens + 1), pad, jnp.int32)
  tokens = tokens.at[:, 0].set(jnp.take_along_axis(input_ids_BxL, last_B[:, None], axis=1)[:, 0].astype(jnp.int32))
  state = _GreedyState.start(tokens).choose(model.logits(hidden_Bx1xD)[:, 0], pad, cfg.eos_token_ids)

  def decode_step(last_Bx1, cache):
    o = model(last_Bx1, jnp.ones_like(last_Bx1), cache=cache)
    return o.logits[:, -1], o.cache

  return _greedy_loop(decode_step, state, out.cache, pad, cfg.eos_token_ids, max_new_tokens)


def _gather(x_BxNx, idx_BxK):
  """x[b, idx[b, k], ...] for each batch row."""
  idx = idx_BxK.reshape(idx_BxK.shape + (1,) * (x_BxNx.ndim - 2))
  return jnp.take_along_axis(x_BxNx, idx, axis=1)


def beam_search(model, input_ids_BxL, attention_mask_BxL, max_new_tokens: int, num_beams: int,
                length_penalty: float = 1.0, early_stopping: bool | str = False) -> GenerateOutput:
  """Beam search as transformers >= 4.50 runs it (static shapes); traceable (call under jit).

  Each step keeps the 2*num_beams best continuations of all beams; those ending in EOS (or at the
  length limit) compete for the `num_beams` finished slots with score
  sum_logprobs / generated_length**length_penalty, the others continue as running beams.
  """
  cfg = model.cfg
  B, N = input_ids_BxL.shape[0], num_beams
  K = 2 * N  # one EOS token: max(2, 1 + n_eos) * num_beams
  M = max_new_tokens + 1  # transformers' max_length: the decoder start token plus new tokens
  enc = model.encode(input_ids_BxL, attention_mask_BxL)
  enc = jnp.repeat(enc, N, axis=0)  # row b*N + n is beam n of input b
  mask = jnp.repeat(attention_mask_BxL, N, axis=0)
  cache = model.init_cache(enc, max_new_tokens)
  top_n_K = jnp.arange(K) < N

  seqs = jnp.full((B, N, M), cfg.pad_token_id, jnp.int32).at[:, :, 0].set(cfg.decoder_start_token_id)
  state = dict(
      cur_len=jnp.ones((), jnp.int32),
      running_seqs=seqs,
      running_scores=jnp.zeros((B, N), jnp.float32).at[:, 1:].set(_NEG),
      seqs=seqs,
      scores=jnp.full((B, N), _NEG, jnp.float32),
      finished=jnp.zeros((B, N), bool),
      improvable=jnp.ones((B, 1), bool),
      hits=jnp.zeros((B, K), bool),
      cache=cache,
  )

  def lp(length):
    return length.astype(jnp.float32) ** length_penalty

  def cond(s):
    open_beam = ~(jnp.all(s["finished"]) & (early_stopping is True))
    unfinished = jnp.any(s["improvable"]) & open_beam & ~jnp.all(s["hits"])
    return (s["cur_len"] < M) & unfinished

  def body(s):
    cur_len = s["cur_len"]
    last = s["running_seqs"][:, :, cur_len - 1].reshape(B * N, 1)
    out = model.decode(last, enc, mask, cache=s["cache"])
    logp = jax.nn.log_softmax(out.logits[:, -1].astype(jnp.float32), axis=-1)
    V = logp.shape[-1]
    logp = logp.reshape(B, N, V) + s["running_scores"][:, :, None]
    topk_logp, topk_idx = jax.lax.top_k(logp.reshape(B, N * V), K)
    topk_beam, topk_token = topk_idx // V, (topk_idx % V).astype(jnp.int32)
    topk_seqs = _gather(s["running_seqs"], topk_beam)
    topk_seqs = jax.lax.dynamic_update_slice_in_dim(topk_seqs, topk_token[:, :, None], cur_len, axis=2)
    hits = (topk_token == cfg.eos_token_id) | (cur_len + 1 >= M)

    # Running beams: the best N continuations that did not just finish.
    running_logp = topk_logp + hits.astype(jnp.float32) * _NEG
    keep = jax.lax.top_k(running_logp, N)[1]
    running_seqs = _gather(topk_seqs, keep)
    running_scores = _gather(running_logp, keep)
    source_beam = _gather(topk_beam, keep)

    # Finished beams: merge newly finished top-N continuations with the previous finished ones.
    just_finished = hits & top_n_K[None, :]
    fin_logp = topk_logp / lp(cur_len)  # cur_len + 1 - decoder_prompt_len generated tokens
    fin_logp = fin_logp + (jnp.all(s["finished"], axis=-1, keepdims=True) & (early_stopping is True)) * _NEG
    fin_logp = fin_logp + (~s["improvable"]).astype(jnp.float32) * _NEG
    fin_logp = fin_logp + (~just_finished).astype(jnp.float32) * _NEG
    merged_scores = jnp.concatenate([s["scores"], fin_logp], axis=1)
    best = jax.lax.top_k(merged_scores, N)[1]
    seqs = _gather(jnp.concatenate([s["seqs"], topk_seqs], axis=1), best)
    scores = _gather(merged_scores, best)
    finished = _gather(jnp.concatenate([s["finished"], just_finished], axis=1), best)

    flat_source = (jnp.arange(B)[:, None] * N + source_beam).reshape(-1)
    cache = out.cache._replace(self_keys=tuple(jnp.take(k, flat_source, axis=0) for k in out.cache.self_keys),
                               self_values=tuple(jnp.take(v, flat_source, axis=0) for v in out.cache.self_values))

    cur_len = cur_len + 1
    # Could a running beam still beat the worst finished one? (transformers' heuristic)
    best_len = (jnp.asarray(M - 1) if (early_stopping == "never" and length_penalty > 0.0) else cur_len - 1)
    best_running = running_scores[:, :1] / lp(best_len)
    worst_finished = jnp.where(finished, jnp.min(scores, axis=1, keepdims=True), _NEG)
    improvable = s["improvable"] & jnp.any(best_running > worst_finished, axis=-1, keepdims=True)
    return dict(cur_len=cur_len, running_seqs=running_seqs, running_scores=running_scores, seqs=seqs, scores=scores,
                finished=finished, improvable=improvable, hits=hits, cache=cache)

  s = jax.lax.while_loop(cond, body, state)
  best_BxM = s["seqs"][:, 0]
  generated = best_BxM[:, 1:]
  is_eos = generated == cfg.eos_token_id
  lengths = jnp.where(jnp.any(is_eos, axis=1), jnp.argmax(is_eos, axis=1) + 1, max_new_tokens).astype(jnp.int32)
  after = jnp.arange(max_new_tokens)[None, :] >= lengths[:, None]
  generated = jnp.where(after, cfg.pad_token_id, generated)
  return GenerateOutput(jnp.concatenate([best_BxM[:, :1], generated], axis=1), lengths, s["scores"][:, 0])


def bucket_length(n: int, max_length: int, minimum: int = 8) -> int:
  """The padded input length for `n` tokens: the next power of two (at least `minimum`), capped at
  `max_length`, so a run compiles for a handful of shapes only."""
  return min(max(minimum, 1 << max(n - 1, 0).bit_length()), max_length)


@dataclasses.dataclass(frozen=True)
class Searches:
  """How a model generates (its prompts' layout in a batch is its config's: `ModelConfig.left_pad_prompts`,
  `prompt_pad_id`, `filler_id`)."""

  greedy: Callable
  beam: Callable | None


# Keyed by the config's `kind` (`family.KINDS`): decoder-only models of any family share the cached greedy loop.
_SEARCHES: dict[str, Searches] = {
    "seq2seq": Searches(greedy_search, beam_search),
    "causal": Searches(decoder_greedy_search, None),
}


def searches_for(cfg) -> Searches:
  if not can_generate(cfg):
    raise ValueError(f"a {type(cfg).__name__} model cannot generate; models that can: kinds {sorted(_SEARCHES)} "
                     "with a decoder")
  return _SEARCHES[cfg.kind]


def can_generate(cfg) -> bool:
  """An encoder-decoder config with its decoder, or a decoder-only LLM's."""
  return cfg.kind in _SEARCHES and cfg.generates


def generate_texts(model, tokenizer, prompts, *, max_new_tokens: int, batch_size: int = 16, max_length: int = 512,
                   num_beams: int = 1, length_penalty: float = 1.0) -> tuple[list[dict], dict]:
  """Generates for each prompt, in batches of similar length; results come back in prompt order.

  Each result is {"output": decoded text, "tokens": generated ids (EOS included)}; the stats give
  counts, seconds and tokens per second. Every batch has the same number of rows (filled with
  one-token rows) and a power-of-two length, which bounds the number of compilations.
  """
  import time

  import numpy as np

  cfg = model.cfg
  searches_for(cfg)  # fails early for a model that cannot generate
  ids = tokenizer(list(prompts), truncation=True, max_length=max_length)["input_ids"]
  n = len(ids)
  rows = min(batch_size, n)
  order = sorted(range(n), key=lambda i: -len(ids[i]))
  graphdef, params = nnx.split(model)
  results: list[dict] = [{} for _ in range(n)]
  shapes, new_tokens, start = set(), 0, time.perf_counter()
  for b in range(0, n, rows):
    batch = order[b:b + rows]
    width = bucket_length(max(len(ids[i]) for i in batch), max_length)
    input_ids = np.full((rows, width), cfg.prompt_pad_id, np.int32)
    mask = np.zeros((rows, width), np.int32)
    edge = -1 if cfg.left_pad_prompts else 0
    input_ids[:, edge], mask[:, edge] = cfg.filler_id, 1  # filler rows: one token
    for r, i in enumerate(batch):
      cols = slice(width - len(ids[i]), width) if cfg.left_pad_prompts else slice(0, len(ids[i]))
      input_ids[r, cols], mask[r, cols] = ids[i], 1
    out = generate((graphdef, params), input_ids, mask, max_new_tokens=max_new_tokens, num_beams=num_beams,
                   length_penalty=length_penalty)
    seqs, lengths = np.asarray(out.sequences), np.asarray(out.lengths)
    shapes.add(width)
    for r, i in enumerate(batch):
      toks = seqs[r, 1:1 + lengths[r]].tolist()
      results[i] = {"output": tokenizer.decode(toks, skip_special_tokens=True), "tokens": toks}
      new_tokens += len(toks)
  seconds = time.perf_counter() - start
  stats = {"sequences": n, "new_tokens": new_tokens, "seconds": seconds,
           "tokens_per_second": new_tokens / max(seconds, 1e-9), "input_lengths": sorted(shapes),
           "truncated": sum(len(x) >= max_length for x in ids)}
  return results, stats
