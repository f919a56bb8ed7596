"""`<task>_t2t`: any task with a text-to-text form (`xtjax.tasks.t2t_forms`), trained and scored as
input text -> target text with the `text_to_text` head (teacher-forced decoder loss).

Reading, label sets and official metrics are the base task's; only featurisation and the mapping
from generated text back to the base task's predictions differ. Inputs are truncated to
`features.max_length` tokens and targets to `features.max_target_length` (EOS kept, as seqio's
`append_eos_after_trim`); `stats` counts how often each is cut.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from xtjax.errors import ConfigError
from xtjax.tasks import featurize as fz
from xtjax.tasks import registry
from xtjax.tasks import t2t_forms
from xtjax.tasks.base import Features, FeatureSettings, Task

SUFFIX = "_t2t"


@dataclasses.dataclass
class GeneratedPredictions:
  """The base task's predictions, the generated texts they came from, and how many were invalid."""

  values: Any  # list per example, or {guid: answer} for QA
  texts: list[str]
  invalid: int


def encode_targets(tokenizer, texts: Sequence[str], length: int) -> tuple[np.ndarray, np.ndarray]:
  """(labels [N, length], truncated [N]): each text's tokens without the tokenizer's special tokens,
  cut to `length - 1`, then EOS, then IGNORE. For T5 tokenizers this is exactly what they produce
  (they append only EOS); a decoder's tokenizer would put its BOS in front, which is no part of an
  answer, and append no EOS, which generation needs to stop."""
  if tokenizer.eos_token_id is None:
    raise ConfigError("text-to-text: the tokenizer has no EOS token to end targets with")
  if length < 2:
    raise ConfigError(f"features.max_target_length must be >= 2 (a token and EOS), got {length}")
  labels = np.full((len(texts), length), fz.IGNORE, np.int32)
  truncated = np.zeros(len(texts), bool)
  for start in range(0, len(texts), fz.CHUNK):
    enc = tokenizer(list(texts[start:start + fz.CHUNK]), add_special_tokens=False, truncation=True,
                    max_length=length - 1)
    for i, (ids, e) in enumerate(zip(enc["input_ids"], enc.encodings), start):
      labels[i, :len(ids) + 1] = list(ids) + [tokenizer.eos_token_id]
      truncated[i] = bool(e.overflowing)
  return labels, truncated


def encode_pairs(pairs: Sequence[tuple[str, str]], tokenizer, input_length: int, target_length: int):
  """(arrays, stats): input_ids / attention_mask [N, input_length] (the tokenizer's special tokens
  included), labels [N, target_length] (`encode_targets`), and truncation counts."""
  arrays, cut_inputs, _ = fz.encode(tokenizer, [p[0] for p in pairs], None, input_length)
  arrays["labels"], cut_targets = encode_targets(tokenizer, [p[1] for p in pairs], target_length)
  arrays.pop("token_type_ids", None)
  stats = {"truncated": int(cut_inputs.sum()), "truncated_targets": int(cut_targets.sum()),
           "target_tokens": int((arrays["labels"] != fz.IGNORE).sum())}
  return arrays, stats


class TextToTextTask(Task):
  head_type = "text_to_text"
  num_labels = 0

  def __init__(self, base_name: str):
    self.base_name = base_name
    self.name = base_name + SUFFIX
    self.form = t2t_forms.form(base_name)

  @property
  def source_name(self) -> str:
    return self.base_name

  @property
  def base(self) -> Task:
    return registry.get(self.base_name)

  @property
  def main_metric(self) -> str:
    return self.base.main_metric

  def fingerprint(self) -> dict[str, Any]:
    base = getattr(self.base, "fingerprint", None)
    return {"task": self.name, "base": base() if base else self.base_name, "form": self.form.source}

  def source_files(self, split: str, language: str, source):
    return self.base.source_files(split, language, source)

  def export_state(self) -> dict[str, Any]:
    export = getattr(self.base, "export_state", None)
    return export() if export else {}

  def restore_state(self, state) -> None:
    if state:
      self.base.restore_state(state)

  def read(self, split: str, language: str, source):
    return self.base.read(split, language, source)

  def pairs(self, examples) -> list[tuple[str, str]]:
    return [self.form.to_text(ex) for ex in examples]

  def featurize(self, examples, tokenizer, settings: FeatureSettings) -> Features:
    fz.require_fast(tokenizer, self.name)
    arrays, stats = encode_pairs(self.pairs(examples), tokenizer, settings.max_length, settings.max_target_length)
    return Features(arrays, np.arange(len(examples)), stats=stats)

  def stats(self, examples, features: Features) -> dict[str, Any]:
    out = fz.basic_stats(examples, features)
    n = len(features)
    out["target_truncation_rate"] = features.stats.get("truncated_targets", 0) / n if n else 0.0
    return out

  def predict(self, outputs: Sequence[str], features: Features, examples, settings: FeatureSettings
              ) -> GeneratedPredictions:
    """Generated texts (one per feature, in feature order) -> the base task's predictions."""
    texts = fz.scatter_by_example(list(outputs), features, len(examples))
    parsed = [self.form.parse(t or "", ex) for t, ex in zip(texts, examples)]
    invalid = sum(p is None for p in parsed)
    head = self.base.head_type
    if head == "span":
      values: Any = {ex.guid: p for ex, p in zip(examples, parsed)}
    elif head == "tagging":  # an unparseable tag sequence is all default tags (every entity missed)
      default = self.base.default_label
      values = [p if p is not None else (default,) * len(ex.tokens) for ex, p in zip(examples, parsed)]
    elif head == "multiple_choice":
      values = [-1 if p is None else p for p in parsed]
    else:
      values = parsed
    return GeneratedPredictions(values, texts, invalid)

  def score(self, predictions: GeneratedPredictions, examples, language: str) -> dict[str, float]:
    """The base task's official metrics, plus `invalid_outputs`: the percentage of generated texts
    outside the target vocabulary (counted wrong)."""
    scores = dict(self.base.score(predictions.values, examples, language))
    scores["invalid_outputs"] = 100.0 * predictions.invalid / max(len(examples), 1)
    return scores

  def submission_text(self, predictions: GeneratedPredictions, examples) -> tuple[str, str]:
    return self.base.submission_text(predictions.values, examples)


for _name in t2t_forms.names():
  registry.register(TextToTextTask(_name))
