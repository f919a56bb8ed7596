"""Masked LM: BERT 80/10/10 masking that is a pure function of (seed, epoch, example index)."""

import numpy as np
import pytest

from tasks_support import unigram, write
from xtjax.data.sources import DataSource
from xtjax.tasks import registry
from xtjax.tasks.base import FeatureSettings
from xtjax.tasks.mlm import MaskedLMTask, mask_tokens


def test_masking_is_deterministic_per_example_and_bert_shaped():
  rng = np.random.default_rng(1)
  ids = rng.integers(10, 1000, size=(400, 64))
  maskable = np.ones_like(ids, bool)
  maskable[:, 0] = maskable[:, -1] = False  # specials
  index = np.arange(400)
  kwargs = dict(seed=3, mask_token_id=4, vocab_size=1000)
  masked, labels = mask_tokens(ids, maskable, index, **kwargs)
  # Any subset in any order gets the same rows (resume / sharding safe).
  order = np.array([399, 5, 17])
  sub_masked, sub_labels = mask_tokens(ids[order], maskable[order], index[order], **kwargs)
  np.testing.assert_array_equal(sub_masked, masked[order])
  np.testing.assert_array_equal(sub_labels, labels[order])
  again, _ = mask_tokens(ids, maskable, index, **kwargs)
  np.testing.assert_array_equal(again, masked)
  other_epoch, _ = mask_tokens(ids, maskable, index, epoch=1, **kwargs)
  assert (other_epoch != masked).any()
  target = labels != -100
  assert not target[:, 0].any() and not target[:, -1].any()
  np.testing.assert_array_equal(labels[target], ids[target])
  assert (masked[~target] == ids[~target]).all()
  rate = target.sum() / maskable.sum()
  assert 0.14 < rate < 0.16
  replaced = (masked[target] == 4).mean()
  kept = (masked[target] == ids[target]).mean()
  assert 0.78 < replaced < 0.82 and 0.08 < kept < 0.12  # the rest (about 10%) are random ids


def test_mlm_task_reads_text_files_and_scores(tmp_path):
  write(tmp_path, "train.de.txt", "Der schnelle braune Fuchs.\n\nspringt über den faulen Hund.\n")
  task = registry.get("mlm")
  examples = task.read("train", "de", DataSource(path=str(tmp_path / "{split}.{lang}.txt")))
  assert [(e.guid, e.text) for e in examples] == [("de-1", "Der schnelle braune Fuchs."),
                                                  ("de-3", "springt über den faulen Hund.")]
  tok = unigram()
  many = examples * 40
  features = task.featurize(many, tok, FeatureSettings(max_length=32))
  labels = features.arrays["labels"]
  original = features.extra["original_input_ids"]
  assert set(features.arrays) == {"input_ids", "attention_mask", "labels"}
  assert not np.isin(original[labels != -100], tok.all_special_ids).any()
  assert features.stats["targets"] == int((labels != -100).sum()) > 0
  again = task.featurize(many, tok, FeatureSettings(max_length=32))
  np.testing.assert_array_equal(again.arrays["input_ids"], features.arrays["input_ids"])
  # A process's shard of the split gets the rows (masks included) the whole split gives those examples.
  ids = np.array([3, 10, 11, 42])
  shard = task.featurize_examples(many, ids, tok, FeatureSettings(max_length=32))
  assert shard.example_index.tolist() == ids.tolist()
  for k in ("input_ids", "labels"):
    np.testing.assert_array_equal(shard.arrays[k], features.arrays[k][ids])
  other_seed = MaskedLMTask("mlm_other", seed=1).featurize(many, tok, FeatureSettings(max_length=32))
  assert (other_seed.arrays["labels"] != labels).any()
  # Perfect predictions (ids) and logits both score 100; a constant guess scores its hit rate.
  assert task.score(task.predict(original, features, many, None), many, "de") == {"accuracy": 100.0}
  logits = np.eye(len(tok), dtype=np.float32)[original]
  assert task.score(task.predict(logits, features, many, None), many, "de") == {"accuracy": 100.0}
  guess = np.full_like(original, original[labels != -100][0])
  want = 100.0 * (original[labels != -100] == guess[0, 0]).mean()
  assert task.score(task.predict(guess, features, many, None), many, "de")["accuracy"] == pytest.approx(want)


def test_mlm_hub_rows(tmp_path):
  write(tmp_path, "train.jsonl", [{"text": "hello world"}, {"text": "tiny corpus"}])
  source = DataSource(kind="hf", hf_id="json", path=str(tmp_path / "{split}.jsonl"))
  assert [e.text for e in registry.get("mlm").read("train", "en", source)] == ["hello world", "tiny corpus"]
