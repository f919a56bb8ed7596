"""Feature cache: a hit skips reading and tokenising; any input that changes features misses."""

import os

import numpy as np
import pytest

from tasks_support import tsv, unigram, wordpiece, write
from xtjax.data.cache import cached_features, tokenizer_identity
from xtjax.data.sources import DataSource
from xtjax.tasks import registry
from xtjax.tasks.base import FeatureSettings


@pytest.fixture
def xnli_source(tmp_path):
  path = write(tmp_path, "data" + os.sep + "test-de.tsv", tsv(("Der Hund", "Ein Tier", "entailment"),
                                                              ("Ja", "Nein", "contradiction")))
  return DataSource(path=str(path)), path


class Counter:
  """Counts tokenizer calls by wrapping the tokenizer class's __call__."""

  def __init__(self, monkeypatch, tok):
    self.calls = 0
    original = type(tok).__call__

    def counting(inner_self, *args, **kwargs):
      self.calls += 1
      return original(inner_self, *args, **kwargs)

    monkeypatch.setattr(type(tok), "__call__", counting)


def test_second_call_is_a_hit_without_reading_or_tokenising(tmp_path, xnli_source, monkeypatch):
  source, _ = xnli_source
  task, tok, settings = registry.get("xnli"), unigram(), FeatureSettings(max_length=16)
  counter = Counter(monkeypatch, tok)
  examples, features = cached_features(task, "test", "de", source, tok, settings, tmp_path / "cache")
  assert counter.calls == 1 and len(features) == 2
  entries = list((tmp_path / "cache" / "xnli").iterdir())
  assert len(entries) == 1 and sorted(p.name for p in entries[0].iterdir()) == ["entry.pkl", "key.json"]

  def no_read(*args, **kwargs):
    raise AssertionError("read on a cache hit")

  monkeypatch.setattr(task, "read", no_read)
  examples2, features2 = cached_features(task, "test", "de", source, tok, settings, tmp_path / "cache")
  assert counter.calls == 1
  assert examples2 == examples and features2.stats == features.stats
  for key, value in features.arrays.items():
    np.testing.assert_array_equal(features2.arrays[key], value)


def test_settings_file_and_tokenizer_changes_invalidate(tmp_path, xnli_source, monkeypatch):
  source, path = xnli_source
  task, tok = registry.get("xnli"), unigram()
  cache = tmp_path / "cache"
  counter = Counter(monkeypatch, tok)
  cached_features(task, "test", "de", source, tok, FeatureSettings(max_length=16), cache)
  cached_features(task, "test", "de", source, tok, FeatureSettings(max_length=16), cache)
  assert counter.calls == 1
  _, features = cached_features(task, "test", "de", source, tok, FeatureSettings(max_length=20), cache)
  assert counter.calls == 2 and features.arrays["input_ids"].shape == (2, 20)
  cached_features(task, "test", "de", source, tok, FeatureSettings(max_length=16, doc_stride=64), cache)
  assert counter.calls == 3  # every FeatureSettings field is in the key
  path.write_text(tsv(("Der Hund", "Ein Tier", "neutral")), encoding="utf-8")
  examples, _ = cached_features(task, "test", "de", source, tok, FeatureSettings(max_length=16), cache)
  assert counter.calls == 4 and [e.label for e in examples] == ["neutral"]
  cached_features(task, "test", "fr", DataSource(path=str(path)), tok, FeatureSettings(max_length=16), cache)
  assert counter.calls == 5  # language is in the key
  assert tokenizer_identity(unigram()) != tokenizer_identity(wordpiece())
  assert tokenizer_identity(unigram()) == tokenizer_identity(unigram())


def test_corrupt_entry_is_rebuilt(tmp_path, xnli_source):
  source, _ = xnli_source
  task, tok, settings = registry.get("xnli"), unigram(), FeatureSettings(max_length=16)
  cached_features(task, "test", "de", source, tok, settings, tmp_path)
  entry = next((tmp_path / "xnli").iterdir()) / "entry.pkl"
  entry.write_bytes(b"not a pickle")
  examples, features = cached_features(task, "test", "de", source, tok, settings, tmp_path)
  assert len(examples) == 2 and len(features) == 2


def test_ccg_label_set_comes_back_with_a_hit(tmp_path):
  task = registry.get("ccg")
  saved = task.labels
  try:
    train = write(tmp_path, "train.tsv", "The\tNP/N\nfox\tN\n\n")
    source = DataSource(files={"train": str(train)})
    task.labels = None
    cached_features(task, "train", "en", source, wordpiece(), FeatureSettings(max_length=8), tmp_path / "c")
    assert task.labels == ("N", "NP/N")
    task.labels = None
    _, features = cached_features(task, "train", "en", source, wordpiece(), FeatureSettings(max_length=8),
                                  tmp_path / "c")
    assert task.labels == ("N", "NP/N") and features.arrays["labels"].max() == 1
  finally:
    task.labels = saved
