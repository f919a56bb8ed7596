"""Multilingual masked language modelling from any text: plain-text files (one sentence or document
per line; blank lines skipped; one file per language via `{lang}` in the path) or hub / TFDS rows
with a text field.

Masking is BERT's: 15% of the maskable tokens (not special, not padding) become targets; of these
80% are replaced by the mask token, 10% by a uniformly random vocabulary id and 10% are kept.
It is done at featurisation by `mask_tokens`, a pure function of (seed, epoch, example index):
the same data gives the same masks in every run, so a resumed run sees exactly the batches the
interrupted one would have (static masking, as the original BERT). The unmasked ids and the
maskable positions are kept in `Features.extra`, so a batcher may call `mask_tokens` with the
epoch for fresh masks per epoch (dynamic masking, as RoBERTa) and still resume exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xtjax.data.formats.common import iter_lines
from xtjax.data.sources import DataSource, local_path, source_rows
from xtjax.errors import DataError
from xtjax.tasks import featurize as fz
from xtjax.tasks import t2t_forms as forms
from xtjax.tasks.base import Features, FeatureSettings, Task
from xtjax.tasks.card import TaskCard
from xtjax.tasks.registry import register


@dataclasses.dataclass(frozen=True)
class TextExample:
  """A line of text in one language."""

  guid: str
  language: str
  text: str


def mask_tokens(input_ids_NxL: np.ndarray, maskable_NxL: np.ndarray, example_index_N: np.ndarray, *, seed: int,
                mask_token_id: int, vocab_size: int, probability: float = 0.15,
                epoch: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """BERT's 80/10/10 masking; (masked ids [N, L], labels [N, L] with -100 off the targets).

  Row r draws from a generator seeded by (seed, epoch, example_index[r]) alone, so any subset or
  order of rows gets the same masks.
  """
  ids = np.array(input_ids_NxL, copy=True)
  labels = np.full(ids.shape, fz.IGNORE, np.int32)
  length = ids.shape[1]
  for r, example in enumerate(np.asarray(example_index_N)):
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch) & 0xFFFFFFFF, int(example) & 0xFFFFFFFF])
    target = (rng.random(length) < probability) & maskable_NxL[r].astype(bool)
    action = rng.random(length)
    random_ids = rng.integers(0, vocab_size, length)
    labels[r, target] = ids[r, target]
    replace = target & (action < 0.8)
    randomise = target & (action >= 0.8) & (action < 0.9)
    ids[r, replace] = mask_token_id
    ids[r, randomise] = random_ids[randomise]
  return ids, labels


class MaskedLMTask(Task):
  """Masked LM with the `mlm` head (tied output embeddings); scored by masked-token accuracy."""

  head_type = "mlm"
  main_metric = "accuracy"
  num_labels = 0  # the head predicts over the encoder's vocabulary

  def __init__(self, name: str = "mlm", probability: float = 0.15, seed: int = 0, text_field: str = "text"):
    self.name = name
    self.probability = probability
    self.seed = seed
    self.text_field = text_field

  def fingerprint(self) -> dict[str, Any]:
    return {"task": self.name, "probability": self.probability, "seed": self.seed, "masking": "bert-80-10-10"}

  def read(self, split: str, language: str, source: DataSource) -> list[TextExample]:
    if source.kind == "local":
      path = local_path(source, split, language, self.name)
      examples = [TextExample(f"{language}-{number}", language, line) for number, line in iter_lines(path)
                  if line.strip()]
      return fz.limited(examples, source)
    rows, where = source_rows(source, split, language, self.name)
    return [TextExample(fz.row_guid(row, ("id",), i), language, fz.field(row, self.text_field, where, i))
            for i, row in enumerate(rows)]

  def source_files(self, split: str, language: str, source: DataSource) -> list[Path]:
    return [local_path(source, split, language, self.name)] if source.kind == "local" else []

  def featurize(self, examples: Sequence[TextExample], tokenizer, settings: FeatureSettings) -> Features:
    return self._masked(examples, np.arange(len(examples)), tokenizer, settings)

  def featurize_examples(self, examples: Sequence[TextExample], ids, tokenizer, settings: FeatureSettings) -> Features:
    # Masks are drawn per example index: a shard masks each example as the whole split would.
    ids = np.asarray(ids, np.int64)
    return self._masked([examples[i] for i in ids], ids, tokenizer, settings)

  def _masked(self, examples: Sequence[TextExample], index: np.ndarray, tokenizer, settings: FeatureSettings
              ) -> Features:
    fz.require_fast(tokenizer, self.name)
    if tokenizer.mask_token_id is None:
      raise DataError(f"task {self.name!r}: the tokenizer has no mask token")
    arrays, truncated, _ = fz.encode(tokenizer, [e.text for e in examples], None, settings.max_length)
    ids = arrays["input_ids"]
    maskable = (arrays["attention_mask"] == 1) & ~np.isin(ids, tokenizer.all_special_ids)
    masked, labels = mask_tokens(ids, maskable, index, seed=self.seed, mask_token_id=tokenizer.mask_token_id,
                                 vocab_size=len(tokenizer), probability=self.probability)
    out = dict(arrays, input_ids=masked, labels=labels)
    extra = {"original_input_ids": ids, "maskable": maskable}
    return Features(out, index, extra, {"truncated": int(truncated.sum()), "targets": int((labels != fz.IGNORE).sum())})

  def stats(self, examples, features: Features) -> dict[str, Any]:
    out = fz.basic_stats(examples, features)
    maskable = int(features.extra["maskable"].sum())
    out["target_rate"] = features.stats["targets"] / maskable if maskable else 0.0
    return out

  def predict(self, outputs, features: Features, examples, settings: FeatureSettings) -> list[tuple]:
    """Logits [N, L, V] (or predicted ids [N, L]) -> (predicted, target) ids at each example's targets."""
    outputs = np.asarray(outputs)
    predicted = outputs.argmax(-1) if outputs.ndim == 3 else outputs
    labels = features.arrays["labels"]
    per_feature = [(predicted[i][labels[i] != fz.IGNORE], labels[i][labels[i] != fz.IGNORE])
                   for i in range(len(labels))]
    return fz.scatter_by_example(per_feature, features, len(examples))

  def score(self, predictions, examples, language: str) -> dict[str, float]:
    total = sum(len(t) for _, t in predictions)
    if not total:
      raise DataError(f"task {self.name!r} ({language}): no masked tokens to score")
    correct = sum(int((p == t).sum()) for p, t in predictions)
    return {"accuracy": 100.0 * correct / total}


register(MaskedLMTask(), TaskCard("mlm", text_to_text=forms.MLM))
