"""Pair classification tasks: upstream files, hub rows (datasets' json builder), TFDS rows, scores."""

import sys
import types

import numpy as np
import pytest

from tasks_support import one_hot, tsv, unigram, wordpiece, write
from xtjax.data.sources import DataSource
from xtjax.errors import DataError
from xtjax.tasks import registry
from xtjax.tasks.base import FeatureSettings
from xtjax.tasks.classification import NLI_LABELS

SETTINGS = FeatureSettings(max_length=24)


def _xnli_file(tmp_path):
  header = ("language", "gold_label", "sentence1", "sentence2", "pairID", "promptID")
  return write(tmp_path, "xnli.test.tsv", tsv(
      header, ("de", "neutral", "Der Hund", "Die schnelle", "1", "1"),
      ("en", "entailment", "The dog", "A dog", "1", "1"), ("de", "contradiction", "Ja", "Nein", "2", "1"),
      ("de", "entailment", "Hallo Welt", "Hallo", "3", "2")))


def test_label_order_is_xtreme_and_shared_by_nli_tasks():
  assert NLI_LABELS == ("contradiction", "entailment", "neutral")
  for name in ("mnli", "anli_plus", "xnli"):
    assert registry.get(name).labels == NLI_LABELS and registry.get(name).num_labels == 3
  assert registry.get("pawsx").labels == registry.get("qqp").labels == ("0", "1")


def test_xnli_reads_one_language_featurises_and_scores(tmp_path):
  task = registry.get("xnli")
  examples = task.read("test", "de", DataSource(path=str(_xnli_file(tmp_path))))
  assert [e.guid for e in examples] == ["de-1", "de-2", "de-3"]
  features = task.featurize(examples, unigram(), SETTINGS)
  assert features.arrays["input_ids"].shape == (3, 24) and features.arrays["input_ids"].dtype == np.int32
  assert features.arrays["labels"].tolist() == [2, 0, 1]  # neutral, contradiction, entailment
  tok = unigram()
  first = tok.decode(features.arrays["input_ids"][0], skip_special_tokens=True).replace(" ", "")
  assert first == "DerHundDieschnelle"
  perfect = task.predict(one_hot(features.arrays["labels"], 3), features, examples, SETTINGS)
  assert perfect == ["neutral", "contradiction", "entailment"]
  assert task.score(perfect, examples, "de") == {"accuracy": 100.0}
  assert task.score(["neutral", "neutral", "neutral"], examples, "de") == {"accuracy": pytest.approx(100 / 3)}
  ext, text = task.submission_text(perfect, examples)
  assert ext == "tsv" and text == "neutral\ncontradiction\nentailment\n"


def test_mnli_glue_and_xnli_mt_layouts_and_pair_files(tmp_path):
  task = registry.get("mnli")
  glue = write(tmp_path, "dev_matched.tsv", tsv(
      ("index", "pairID", "sentence1", "sentence2", "gold_label"), (0, "p0", "A man.", "A person.", "entailment"),
      (1, "p1", "A cat.", "No cat.", "-"), (2, "p2", "Sun.", "Rain.", "contradiction")))
  examples = task.read("dev", "en", DataSource(files={"dev": str(glue)}))
  assert [(e.guid, e.label) for e in examples] == [("p0", "entailment"), ("p2", "contradiction")]
  mt = write(tmp_path, "multinli.train.en.tsv", tsv(("premise", "hypo", "label"), ("A", "B", "contradictory")))
  assert registry.get("xnli").read("train", "en", DataSource(files={"train": str(mt)}))[0].label == "contradiction"
  pairs = write(tmp_path, "test-fr.tsv", tsv(("Un chat.", "Un chien.", "neutral")))
  assert registry.get("xnli").read("test", "fr", DataSource(path=str(pairs)))[0].label == "neutral"


def test_pawsx_and_qqp_with_f1(tmp_path):
  paws = write(tmp_path, "paws.tsv", tsv(("id", "sentence1", "sentence2", "label"), (1, "a b", "b a", 1),
                                         (2, "c", "d", 0)))
  task = registry.get("pawsx")
  examples = task.read("test", "en", DataSource(path=str(paws)))
  features = task.featurize(examples, wordpiece(), SETTINGS)
  assert features.arrays["labels"].tolist() == [1, 0]
  qqp = write(tmp_path, "qqp.tsv", tsv(("id", "qid1", "qid2", "question1", "question2", "is_duplicate"),
                                       (1, 1, 2, "q1", "q2", 1), (2, 3, 4, "q3", "q4", 1), (3, 5, 6, "q5", "q6", 0),
                                       (4, 7, 8, "q7", "q8", 0)))
  task = registry.get("qqp")
  examples = task.read("dev", "en", DataSource(path=str(qqp)))
  # tp=1 (row 1), fn=1 (row 2), fp=1 (row 3): F1 = 2/(2+1+1) = 50; accuracy 2/4.
  assert task.score(["1", "0", "1", "0"], examples, "en") == {"accuracy": 50.0, "f1": 50.0}


def test_anli_plus_reads_its_components_in_order(tmp_path):
  anli = [{"uid": f"u{i}", "context": f"premise {i}", "hypothesis": "h", "label": "enc"[i % 3]} for i in range(3)]
  files = {f"train.anli_r{r}": str(write(tmp_path, f"R{r}/train.jsonl", anli)) for r in (1, 2, 3)}
  files["train.snli"] = str(write(tmp_path, "snli.jsonl", [
      {"pairID": "s1", "sentence1": "x", "sentence2": "y", "gold_label": "neutral"},
      {"pairID": "s2", "sentence1": "x", "sentence2": "y", "gold_label": "-"}]))
  files["train.mnli"] = str(write(tmp_path, "mnli.tsv", tsv(("sentence1", "sentence2", "gold_label", "pairID"),
                                                            ("m", "n", "entailment", "m1"))))
  files["dev.anli_r1"] = files["train.anli_r1"]
  task = registry.get("anli_plus")
  source = DataSource(files=files)
  examples = task.read("train", "en", source)
  assert [e.guid for e in examples] == ["anli_r1-u0", "anli_r1-u1", "anli_r1-u2", "anli_r2-u0", "anli_r2-u1",
                                        "anli_r2-u2", "anli_r3-u0", "anli_r3-u1", "anli_r3-u2", "mnli-m1", "snli-s1"]
  assert examples[1].label == "neutral" and examples[2].label == "contradiction"
  assert len(task.read("dev", "en", source)) == 3
  assert len(task.source_files("train", "en", source)) == 5
  mixed = task.read("train", "en", {"anli_r1": DataSource(path=files["train.anli_r1"]),
                                    "snli": DataSource(path=files["train.snli"])})
  assert [e.guid for e in mixed] == ["anli_r1-u0", "anli_r1-u1", "anli_r1-u2", "snli-s1"]


def test_malformed_label_names_file_and_line(tmp_path):
  bad = write(tmp_path, "bad.tsv", tsv(("sentence1", "sentence2", "gold_label"), ("a", "b", "entailment"),
                                       ("a", "b", "maybe")))
  with pytest.raises(DataError, match=r"bad\.tsv:3 \[gold_label\]"):
    registry.get("mnli").read("dev", "en", DataSource(path=str(bad)))


def test_hf_rows_via_json_builder_map_hub_label_ids(tmp_path):
  # glue/mnli schema: label 0 entailment, 1 neutral, 2 contradiction, -1 unlabelled.
  rows = [{"premise": "p0", "hypothesis": "h0", "label": 0, "idx": 0},
          {"premise": "p1", "hypothesis": "h1", "label": 2, "idx": 1},
          {"premise": "p2", "hypothesis": "h2", "label": -1, "idx": 2}]
  write(tmp_path, "validation.jsonl", rows)
  source = DataSource(kind="hf", hf_id="json", path=str(tmp_path / "{split}.jsonl"), split_names={"dev": "validation"})
  examples = registry.get("mnli").read("dev", "en", source)
  assert [(e.guid, e.label) for e in examples] == [("0", "entailment"), ("1", "contradiction")]
  # xnli all_languages schema: premise {lang: text}, hypothesis {language: [...], translation: [...]}.
  write(tmp_path, "test.jsonl", [{"premise": {"de": "Hund", "en": "dog"},
                                  "hypothesis": {"language": ["de", "en"], "translation": ["Katze", "cat"]},
                                  "label": 1}])
  examples = registry.get("xnli").read("test", "de", source)
  assert (examples[0].text_a, examples[0].text_b, examples[0].label) == ("Hund", "Katze", "neutral")
  with pytest.raises(DataError, match=r"row 0 \[premise\]: no 'fr' text"):
    registry.get("xnli").read("test", "fr", source)


def _tfds_rows():
  return [{"premise": {"de": b"Der Hund", "en": b"The dog"},
           "hypothesis": {"language": np.array([b"de", b"en"]), "translation": np.array([b"Ein Tier", b"An animal"])},
           "label": np.int64(0)},
          {"premise": {"de": b"Ja", "en": b"Yes"},
           "hypothesis": {"language": np.array([b"de", b"en"]), "translation": np.array([b"Nein", b"No"])},
           "label": np.int64(2)}]


def test_tfds_rows_with_a_fake_tfds_module(monkeypatch):
  fake = types.ModuleType("tensorflow_datasets")
  calls = []

  def load(name, split, data_dir=None):
    calls.append((name, split))
    return _tfds_rows() if name == "xnli" else [{"premise": b"P", "hypothesis": b"H", "label": np.int64(1)}]

  fake.load = load
  fake.as_numpy = lambda ds: iter(ds)
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
  examples = registry.get("xnli").read("dev", "de", DataSource(kind="tfds"))
  assert calls[-1] == ("xnli", "validation")  # the task's TFDS defaults
  assert [(e.text_a, e.text_b, e.label) for e in examples] == [("Der Hund", "Ein Tier", "entailment"),
                                                                ("Ja", "Nein", "contradiction")]
  mnli = registry.get("mnli").read("dev", "en", DataSource(kind="tfds"))
  assert calls[-1] == ("multi_nli", "validation_matched") and mnli[0].label == "neutral"


def test_tfds_mock_data_xnli_and_multi_nli():
  tfds = pytest.importorskip("tensorflow_datasets")
  tf = pytest.importorskip("tensorflow")

  def as_dataset(self, split, *args, **kwargs):
    if self.name == "xnli":
      rows = _tfds_rows()
      return tf.data.Dataset.from_generator(
          lambda: iter(rows), output_signature={
              "premise": {k: tf.TensorSpec((), tf.string) for k in ("de", "en")},
              "hypothesis": {"language": tf.TensorSpec((None,), tf.string),
                             "translation": tf.TensorSpec((None,), tf.string)},
              "label": tf.TensorSpec((), tf.int64)})
    return tf.data.Dataset.from_tensor_slices({"premise": [b"P1", b"P2"], "hypothesis": [b"H1", b"H2"],
                                               "label": np.array([2, 0])})

  with tfds.testing.mock_data(as_dataset_fn=as_dataset):
    xnli = registry.get("xnli").read("test", "de", DataSource(kind="tfds"))
    mnli = registry.get("mnli").read("train", "en", DataSource(kind="tfds"))
  assert [(e.text_b, e.label) for e in xnli] == [("Ein Tier", "entailment"), ("Nein", "contradiction")]
  assert [(e.text_a, e.label) for e in mnli] == [("P1", "contradiction"), ("P2", "entailment")]


def test_hub_row_schemas_anli_snli_qqp_pawsx():
  from xtjax.tasks.classification import nli_row, pair_row

  anli = nli_row({"uid": "a1", "premise": "p", "hypothesis": "h", "label": 2, "reason": ""}, 0, "anli", "en", "train")
  assert (anli.guid, anli.label) == ("a1", "contradiction")
  assert nli_row({"premise": "p", "hypothesis": "h", "label": -1}, 3, "snli", "en", "train") is None
  assert nli_row({"premise": "p", "hypothesis": "h", "label": -1}, 3, "glue", "en", "test").label is None
  qqp = pair_row({"question1": "a", "question2": "b", "label": 1, "idx": 9}, 0, "glue/qqp", "en", "dev")
  assert (qqp.guid, qqp.text_a, qqp.label) == ("9", "a", "1")
  paws = pair_row({"id": 4, "sentence1": "a", "sentence2": "b", "label": 0}, 0, "paws-x", "de", "test")
  assert (paws.guid, paws.label) == ("4", "0")
  with pytest.raises(DataError, match=r"paws-x row 2 \[label\]: '7' is not 0 or 1"):
    pair_row({"sentence1": "a", "sentence2": "b", "label": 7}, 2, "paws-x", "de", "test")
  with pytest.raises(DataError, match=r"anli row 5 \[hypothesis/sentence2\]: missing"):
    nli_row({"premise": "p", "label": 0}, 5, "anli", "en", "train")
