"""Small learnable tasks generated offline, for tests, demos and smoke runs of the trainer.

`toy_cls`: is an animal word in the sentence (label 1) or not (label 0)? Data is jsonl
({"text", "label"}) written by `write_toy_data`, one file per split and language.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from xtjax.data.sources import DataSource, local_path
from xtjax.errors import DataError, where
from xtjax.metrics import accuracy
from xtjax.tasks import t2t_forms as forms
from xtjax.tasks.base import Features, FeatureSettings, Task
from xtjax.tasks.card import TaskCard
from xtjax.tasks.registry import register

_WORDS = {
    "en": (["the", "a", "quick", "brown", "over", "lazy", "runs", "and", "red", "small", "jumps", "big"],
           ["fox", "dog", "cat", "bird"]),
    "de": (["der", "die", "schnelle", "braune", "über", "faule", "läuft", "und", "rot", "klein"],
           ["fuchs", "hund", "katze", "vogel"]),
    "es": (["el", "la", "rápido", "marrón", "sobre", "perezoso", "corre", "y", "rojo", "pequeño"],
           ["zorro", "perro", "gato", "pájaro"]),
}


def write_toy_data(folder: Path, n_train: int = 256, n_eval: int = 64, seed: int = 0,
                   languages: Sequence[str] = ("en", "de", "es")) -> Path:
  """Writes {folder}/{split}.{lang}.jsonl for train (en), dev (en) and test (every language)."""
  folder = Path(folder)
  folder.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(seed)
  plan = [("train", "en", n_train), ("dev", "en", n_eval)] + [("test", lang, n_eval) for lang in languages]
  for split, lang, n in plan:
    filler, animals = _WORDS[lang]
    with open(folder / f"{split}.{lang}.jsonl", "w", encoding="utf-8") as f:
      for i in range(n):
        words = list(rng.choice(filler, size=rng.integers(3, 8)))
        label = int(i % 2)
        if label:
          words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(animals)))
        f.write(json.dumps({"text": " ".join(words), "label": label}, ensure_ascii=False) + "\n")
  return folder


class ToyClassification(Task):
  name = "toy_cls"
  head_type = "classification"
  num_labels = 2
  main_metric = "accuracy"

  def read(self, split: str, language: str, source: DataSource):
    path = local_path(source, split, language, self.name)
    out = []
    with open(path, encoding="utf-8") as f:
      for i, line in enumerate(f, 1):
        try:
          row = json.loads(line)
          out.append((str(row["text"]), int(row["label"])))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
          raise DataError(f"{where(path, i)}: bad record ({type(e).__name__}: {e})") from e
        if source.limit is not None and len(out) >= source.limit:
          break
    return out

  def featurize(self, examples, tokenizer, settings: FeatureSettings) -> Features:
    enc = tokenizer([t for t, _ in examples], truncation=True, max_length=settings.max_length, padding="max_length",
                    return_tensors="np")
    arrays = {"input_ids": enc["input_ids"].astype(np.int32), "attention_mask": enc["attention_mask"].astype(np.int32),
              "labels": np.array([y for _, y in examples], np.int32)}
    return Features(arrays, np.arange(len(examples)))

  def predict(self, outputs, features, examples, settings):
    pred = np.full(len(examples), -1, np.int64)
    pred[features.example_index] = np.asarray(outputs).argmax(-1)
    return pred

  def score(self, predictions, examples, language):
    return {"accuracy": accuracy(list(predictions), [y for _, y in examples])}


register(ToyClassification(), TaskCard("toy_cls", text_to_text=forms.TOY))
