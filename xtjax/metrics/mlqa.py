"""MLQA exact match and F1 with language-specific answer normalisation.

Matches the official `mlqa_evaluation_v1.py` (which XTREME copies to
`third_party/evaluate_mlqa.py` and uses for MLQA only; XQuAD and TyDiQA use SQuAD v1.1):
Unicode punctuation, per-language article lists, and character-level tokens for Chinese.
"""

from __future__ import annotations

import re
import string
import sys
import unicodedata
from collections.abc import Mapping, Sequence
from functools import lru_cache

from xtjax.errors import ConfigError, DataError
from xtjax.metrics.squad import token_f1

WHITESPACE_LANGS = ("en", "es", "hi", "vi", "de", "ar")
MIXED_SEGMENTATION_LANGS = ("zh",)
LANGS = WHITESPACE_LANGS + MIXED_SEGMENTATION_LANGS

_ARTICLES = {
    "en": re.compile(r"\b(a|an|the)\b"),
    "es": re.compile(r"\b(un|una|unos|unas|el|la|los|las)\b"),
    "vi": re.compile(r"\b(của|là|cái|chiếc|những)\b"),
    "de": re.compile(r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b"),
    # Upstream's first alternative can never match ('^' after a character), so in effect every
    # 'ال' is replaced by a space, also inside words.
    "ar": re.compile(r"\sال^|ال"),
}
_CJK = re.compile(r"[\u4e00-\u9fa5]")


@lru_cache(maxsize=1)
def punctuation() -> frozenset[str]:
  """Every Unicode character whose category starts with 'P', plus ASCII punctuation (which adds
  symbols such as $ + < = > ^ ` | ~). Built on first use: the scan takes about half a second."""
  return frozenset(
      chr(i) for i in range(sys.maxunicode) if unicodedata.category(chr(i)).startswith("P")
  ) | frozenset(string.punctuation)


def _check_lang(lang: str) -> None:
  if lang not in LANGS:
    raise ConfigError(f"MLQA metric: unknown language {lang!r}; expected one of {', '.join(LANGS)}")


def mixed_segmentation(text: str) -> list[str]:
  """Splits CJK characters and punctuation into single tokens, the rest on whitespace."""
  punct = punctuation()
  tokens, pending = [], ""
  for ch in text:
    if _CJK.search(ch) or ch in punct:
      tokens.extend(pending.split())
      pending = ""
      tokens.append(ch)
    else:
      pending += ch
  tokens.extend(pending.split())
  return tokens


@lru_cache(maxsize=65536)
def normalize_answer(s: str, lang: str) -> str:
  """Lower-case, drop punctuation, drop the language's articles, re-tokenise, join by spaces."""
  _check_lang(lang)
  punct = punctuation()
  s = "".join(ch for ch in s.lower() if ch not in punct)
  if lang in _ARTICLES:
    s = _ARTICLES[lang].sub(" ", s)
  tokens = mixed_segmentation(s) if lang in MIXED_SEGMENTATION_LANGS else s.split()
  return " ".join(t for t in tokens if t.strip())


def exact_match(prediction: str, ground_truth: str, lang: str) -> bool:
  return normalize_answer(prediction, lang) == normalize_answer(ground_truth, lang)


def f1(prediction: str, ground_truth: str, lang: str) -> float:
  return token_f1(normalize_answer(prediction, lang).split(), normalize_answer(ground_truth, lang).split())


def mlqa(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]],
         lang: str) -> dict[str, float]:
  """{"exact_match", "f1"} in percent for answers in `lang` (max over gold answers).

  As upstream, a reference question without a prediction scores 0 and still counts.
  """
  _check_lang(lang)
  if not references:
    raise DataError("mlqa: no reference questions")
  em_sum = f1_sum = 0.0
  for qid, golds in references.items():
    if isinstance(golds, str) or not golds:
      raise DataError(f"mlqa: question {qid!r} needs a non-empty list of answer strings")
    if qid not in predictions:
      continue
    pred = predictions[qid]
    em_sum += max(exact_match(pred, g, lang) for g in golds)
    f1_sum += max(f1(pred, g, lang) for g in golds)
  total = len(references)
  return {"exact_match": 100.0 * em_sum / total, "f1": 100.0 * f1_sum / total}
