"""Extractive-QA featurisation: question-first windows over long contexts, with answer labels.

As Hugging Face `run_qa.py`: one batched fast-tokenizer call per chunk of examples with
`truncation="only_second"`, `stride=doc_stride` (tokens of overlap between windows) and
overflowing windows; a window that does not hold the whole answer, and every window of an
unanswerable question, is labelled at the CLS token. As XTREME, questions are first cut to
`max_query_length` tokens.

Offsets are made exact for answer extraction: a context token's character span drops the
whitespace sentencepiece attaches to it ("▁Paris" maps to " Paris") and takes in the combining
marks a normaliser deleted after it (BERT's accent stripping drops Thai and Devanagari vowel
signs); tokens that cover only whitespace get no span. Post-processing reads `Features.extra`:
`offsets` [N, L, 2] (char start, end into the example's context; -1 outside the context) and
`cls_index` [N].
"""

from __future__ import annotations

import itertools
import unicodedata
from collections.abc import Sequence

import numpy as np

from xtjax.data.formats.records import QAExample
from xtjax.errors import ConfigError
from xtjax.tasks.base import Features, FeatureSettings

CHUNK = 1000  # examples per tokenizer call, to bound peak memory on SQuAD-sized inputs
QA_FEATURES_VERSION = 1  # bump when featurisation changes what it produces (feature-cache key)


def check_settings(tokenizer, settings: FeatureSettings) -> None:
  """The tokenizer panics when the overlap does not fit; say which settings to change instead."""
  if not getattr(tokenizer, "is_fast", False):
    raise ConfigError("extractive QA needs a fast (Rust) tokenizer for offset mappings; "
                      f"got {type(tokenizer).__name__}")
  special = tokenizer.num_special_tokens_to_add(pair=True)
  room = settings.max_length - settings.max_query_length - special
  if settings.max_query_length < 1 or settings.doc_stride < 0 or settings.doc_stride >= room:
    raise ConfigError(
        f"QA features: doc_stride ({settings.doc_stride}) must be >= 0 and smaller than max_length "
        f"({settings.max_length}) - max_query_length ({settings.max_query_length}) - {special} special "
        f"tokens = {room}")


def truncate_questions(questions: Sequence[str], tokenizer, max_query_length: int) -> tuple[list[str], int]:
  """Questions cut to at most `max_query_length` tokens (without special tokens), and how many were cut.

  The cut is made in the text, after the last kept token; a cut word can re-tokenise into more
  pieces, so the check repeats until every question fits.
  """
  out = [q.lstrip() for q in questions]  # run_qa.py: some questions start with lots of whitespace
  truncated = set()
  todo = list(range(len(out)))
  while todo:
    offsets = tokenizer([out[i] for i in todo], add_special_tokens=False,
                        return_offsets_mapping=True)["offset_mapping"]
    again = []
    for i, offs in zip(todo, offsets):
      if len(offs) > max_query_length:
        cut = offs[max_query_length - 1][1]
        out[i] = out[i][:cut if cut < len(out[i]) else len(out[i]) - 1]
        truncated.add(i)
        again.append(i)
    todo = again
  return out, len(truncated)


def _char_classes(context: str) -> tuple[np.ndarray, np.ndarray]:
  """(is_space [n], is_mark [n]) per character of `context` (Unicode whitespace; categories M*)."""
  codes = np.frombuffer(context.encode("utf-32-le"), dtype=np.uint32)
  uniq, inverse = np.unique(codes, return_inverse=True)
  space = np.array([chr(c).isspace() for c in uniq], bool)
  mark = np.array([unicodedata.category(chr(c)).startswith("M") for c in uniq], bool)
  return space[inverse].reshape(-1), mark[inverse].reshape(-1)


def _next_true(flags: np.ndarray) -> np.ndarray:
  """[n + 1]: the first index j >= i where flags[j] (n when none)."""
  n = flags.shape[0]
  idx = np.where(np.append(flags, True), np.arange(n + 1), n)
  return np.minimum.accumulate(idx[::-1])[::-1]


def context_offsets(context: str, raw_KxLx2: np.ndarray, is_context_KxL: np.ndarray,
                    char_classes: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
  """Exact character spans [K, L, 2] of the context tokens of one example's K windows (-1 elsewhere)."""
  n = len(context)
  is_space, is_mark = char_classes if char_classes is not None else _char_classes(context)
  start, end = np.clip(raw_KxLx2[..., 0], 0, n), np.clip(raw_KxLx2[..., 1], 0, n)
  valid = is_context_KxL & (end > start)
  # Drop leading and trailing whitespace ("▁" pieces map to the space before the word).
  start = np.minimum(_next_true(~is_space)[start], end)
  last_end = np.maximum.accumulate(np.where(np.concatenate([[False], ~is_space]), np.arange(n + 1), 0))
  end = np.maximum(last_end[end], start)
  valid &= end > start
  # Combining marks that no token covers (deleted by the normaliser) belong to the token before.
  delta = np.zeros(n + 1, np.int64)
  np.add.at(delta, start[valid], 1)
  np.add.at(delta, end[valid], -1)
  covered = np.cumsum(delta)[:n] > 0
  end = _next_true(~(is_mark & ~covered))[end]
  return np.where(valid[..., None], np.stack([start, end], -1), -1)


def answer_chars(text: str, start: int) -> tuple[int, int]:
  """(start, end) character span of an answer, without surrounding whitespace."""
  lead = len(text) - len(text.lstrip())
  return start + lead, start + lead + len(text.strip())


def answer_token_span(offsets_Lx2: np.ndarray, start_char: int, end_char: int) -> tuple[int, int] | None:
  """(first, last) token of a window covering the answer's characters, or None if the window does
  not hold the whole answer."""
  starts, ends = offsets_Lx2[:, 0], offsets_Lx2[:, 1]
  valid = starts >= 0
  if not valid.any() or starts[valid].min() > start_char or ends[valid].max() < end_char:
    return None
  first = np.flatnonzero(valid & (ends > start_char))
  last = np.flatnonzero(valid & (starts < end_char))
  if not first.size or not last.size or last[-1] < first[0]:
    return None
  return int(first[0]), int(last[-1])


def featurize_qa(examples: Sequence[QAExample], tokenizer, settings: FeatureSettings) -> Features:
  """Windows of (question, context) with start/end labels; see the module docstring."""
  check_settings(tokenizer, settings)
  keep_types = "token_type_ids" in tokenizer.model_input_names
  parts: dict[str, list[np.ndarray]] = {k: [] for k in ("input_ids", "attention_mask", "token_type_ids",
                                                         "start_positions", "end_positions",
                                                         "example_index", "offsets", "cls_index")}
  truncated = 0
  classes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
  for lo in range(0, len(examples), CHUNK):
    chunk = examples[lo:lo + CHUNK]
    questions, cut = truncate_questions([ex.question for ex in chunk], tokenizer, settings.max_query_length)
    truncated += cut
    enc = tokenizer(questions, [ex.context for ex in chunk], truncation="only_second",
                    max_length=settings.max_length, stride=settings.doc_stride,
                    return_overflowing_tokens=True, return_offsets_mapping=True,
                    padding="max_length", return_token_type_ids=keep_types)
    # Lists, not return_tensors="np": transformers' tensor conversion is slower than the tokenizer.
    ids = np.asarray(enc["input_ids"], np.int32)
    owner = np.asarray(enc["overflow_to_sample_mapping"], np.int64)
    raw_offsets = np.fromiter(itertools.chain.from_iterable(itertools.chain.from_iterable(enc["offset_mapping"])),
                              np.int64, count=ids.size * 2).reshape(ids.shape + (2,))
    is_context = np.array([e.sequence_ids for e in enc.encodings], dtype=object).reshape(ids.shape) == 1
    offsets = np.full(ids.shape + (2,), -1, np.int64)
    bounds = np.searchsorted(owner, np.arange(len(chunk) + 1))  # windows come in example order
    for j, ex in enumerate(chunk):
      rows = slice(bounds[j], bounds[j + 1])
      if ex.context not in classes:  # questions on one paragraph share its context
        classes = {ex.context: _char_classes(ex.context)}
      offsets[rows] = context_offsets(ex.context, raw_offsets[rows], is_context[rows], classes[ex.context])
    cls = np.array([_cls_index(row, tokenizer.cls_token_id) for row in ids], np.int32)
    start_pos, end_pos = cls.copy(), cls.copy()
    for i, j in enumerate(owner):
      ex = chunk[j]
      if ex.answers and not ex.is_impossible:
        span = answer_token_span(offsets[i], *answer_chars(*ex.answers[0]))
        if span is not None:
          start_pos[i], end_pos[i] = span
    parts["input_ids"].append(ids)
    parts["attention_mask"].append(np.asarray(enc["attention_mask"], np.int32))
    if keep_types:
      parts["token_type_ids"].append(np.asarray(enc["token_type_ids"], np.int32))
    parts["start_positions"].append(start_pos)
    parts["end_positions"].append(end_pos)
    parts["example_index"].append((owner + lo).astype(np.int32))
    parts["offsets"].append(offsets.astype(np.int32))
    parts["cls_index"].append(cls)
  L = settings.max_length
  shapes = {"offsets": (0, L, 2), "input_ids": (0, L), "attention_mask": (0, L), "token_type_ids": (0, L)}
  cat = {k: np.concatenate(v) if v else np.zeros(shapes.get(k, (0,)), np.int32) for k, v in parts.items()}
  names = ["input_ids", "attention_mask"] + ["token_type_ids"] * keep_types + ["start_positions", "end_positions"]
  features = Features({k: cat[k] for k in names}, cat["example_index"],
                      extra={"offsets": cat["offsets"], "cls_index": cat["cls_index"]},
                      stats={"truncated_questions": truncated})
  features.stats = {k: v for k, v in recoverability(examples, features).items() if isinstance(v, int)}
  return features


def _cls_index(input_ids: np.ndarray, cls_token_id: int | None) -> int:
  hits = np.flatnonzero(input_ids == cls_token_id) if cls_token_id is not None else ()
  return int(hits[0]) if len(hits) else 0


def recoverability(examples: Sequence[QAExample], features: Features) -> dict:
  """How well the features keep the gold answers.

  An answer is recoverable when the token span that labels it in the first window holding it
  gives back exactly its text (without surrounding whitespace) through the offsets. Every gold
  answer counts, not only the first (the one used as a training label). `recoverable_rate` is a
  fraction (nan when there are no answers); `truncated_questions` comes from featurisation.
  """
  offsets = features.extra["offsets"]
  windows = [[] for _ in examples]
  for i, j in enumerate(features.example_index):
    windows[int(j)].append(i)
  answers = recoverable = outside = 0
  for ex, rows in zip(examples, windows):
    if ex.is_impossible:
      continue
    for text, start in ex.answers:
      answers += 1
      s, e = answer_chars(text, start)
      for i in rows:
        span = answer_token_span(offsets[i], s, e)
        if span is not None:
          got = ex.context[offsets[i, span[0], 0]:offsets[i, span[1], 1]]
          recoverable += got == ex.context[s:e]
          break
      else:
        outside += 1
  return {
      "examples": len(examples),
      "features": len(features),
      "multi_window_examples": sum(len(rows) > 1 for rows in windows),
      "truncated_questions": int(features.stats.get("truncated_questions", 0)),
      "unanswerable": sum(ex.is_impossible for ex in examples),
      "answers": answers,
      "recoverable_answers": recoverable,
      "answers_not_recoverable": answers - recoverable,
      "answers_outside_windows": outside,
      "recoverable_rate": recoverable / answers if answers else float("nan"),
  }
