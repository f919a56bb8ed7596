"""Offline reads through the hub and TFDS paths with the source table's defaults."""

import pytest

from hub_fixture import use_local_repo, write_hub_repo
from xtjax.data.sources import DataSource
from xtjax.errors import DataError
from xtjax.tasks import registry
from xtjax.tasks.source_check import source_row
from xtjax.tasks.tagging import UDPOS_NAMES
from xtjax.tasks.tagging import UPOS_LABELS

HF = DataSource(kind="hf")
# pos_tags ids in google/xtreme's alphabetical UPOS order.
ID = {tag: i for i, tag in enumerate(UPOS_LABELS)}


def _ud(tokens, tags):
  return {"tokens": tokens, "pos_tags": [ID[t] for t in tags]}


@pytest.fixture
def udpos_repo(tmp_path, monkeypatch):
  repo = write_hub_repo(tmp_path / "xtreme", {
      "udpos.English": {"train": [_ud(["The", "dog"], ["DET", "NOUN"])],
                        "validation": [_ud(["A", "cat"], ["DET", "NOUN"])],
                        "test": [_ud(["Dogs", "bark"], ["NOUN", "VERB"])]},
      "udpos.German": {"test": [_ud(["Der", "Hund", "bellt", "."], ["DET", "NOUN", "VERB", "PUNCT"]),
                                _ud(["Ja"], ["INTJ"])]},
  })
  use_local_repo(monkeypatch, registry.get("udpos"), repo)
  return repo


def test_udpos_reads_each_language_from_its_own_treebank(udpos_repo):
  """German evaluation reads German (the old default read English EWT for every language)."""
  task = registry.get("udpos")
  german = task.read("test", "de", HF)
  assert [e.tokens for e in german] == [("Der", "Hund", "bellt", "."), ("Ja",)]
  assert german[0].labels == ("DET", "NOUN", "VERB", "PUNCT")
  assert [e.tokens for e in task.read("test", "en", HF)] == [("Dogs", "bark")]
  assert [e.tokens for e in task.read("dev", "en", HF)] == [("A", "cat")]  # dev -> validation
  with pytest.raises(DataError, match=r"config 'udpos.Thai'"):  # absent, named, never English instead
    task.read("test", "th", HF)


def test_every_udpos_language_has_a_treebank_name():
  from xtjax.tasks.tagging import UDPOS_LANGS
  assert set(UDPOS_LANGS) <= set(UDPOS_NAMES)
  assert source_row("udpos").hf_id == "google/xtreme" and source_row("udpos").hf_config == "udpos.{lang}"


def _qa(qid, context, answer):
  return {"id": qid, "title": "t", "context": context, "question": "Q?",
          "answers": {"text": [answer], "answer_start": [context.index(answer)]}}


@pytest.mark.parametrize("task_name, configs, split, lang, hub_split", [
    ("xquad", {"xquad.de": {"validation": [_qa("x1", "Der Hund bellt.", "Hund")]}}, "test", "de", "validation"),
    ("mlqa", {"MLQA.hi.hi": {"test": [_qa("m1", "कुत्ता भौंकता है", "कुत्ता")],
                             "validation": [_qa("m0", "a b", "b")]}}, "test", "hi", "test"),
    ("squad_v1", {"default": {"train": [_qa("s1", "The dog barks.", "dog")]}}, "train", "en", "train"),
    ("tydiqa", {"secondary_task": {"validation": [_qa("english-1-1", "Dogs bark.", "Dogs"),
                                                  _qa("swahili-2-1", "Mbwa hubweka.", "Mbwa")]}},
     "test", "sw", "validation"),
])
def test_qa_tasks_read_their_hub_layout(tmp_path, monkeypatch, task_name, configs, split, lang, hub_split):
  task = registry.get(task_name)
  use_local_repo(monkeypatch, task, write_hub_repo(tmp_path / task_name, configs))
  examples = task.read(split, lang, HF)
  rows = next(iter(configs.values()))[hub_split]
  expected = [r["id"] for r in rows if task_name != "tydiqa" or r["id"].startswith("swahili")]
  assert [e.guid for e in examples] == expected


def test_siqa_and_xnli_read_their_hub_layout(tmp_path, monkeypatch):
  siqa = registry.get("siqa")
  use_local_repo(monkeypatch, siqa, write_hub_repo(tmp_path / "siqa", {"default": {"validation": [
      {"context": "Ann slept.", "question": "Why?", "answerA": "tired", "answerB": "hungry", "answerC": "bored",
       "label": "1"}]}}))
  assert siqa.read("dev", "en", HF)[0].label == 0  # labels "1".."3"
  xnli = registry.get("xnli")
  use_local_repo(monkeypatch, xnli, write_hub_repo(tmp_path / "xnli", {"de": {"test": [
      {"premise": "Ein Hund.", "hypothesis": "Ein Tier.", "label": 0}]}}))
  assert [e.text_a for e in xnli.read("test", "de", HF)] == ["Ein Hund."]


def test_tfds_defaults_resolve_names_and_splits():
  """`kind: tfds` with no name uses the table's TFDS name; mock_data serves it offline."""
  tfds = pytest.importorskip("tensorflow_datasets")
  tf = pytest.importorskip("tensorflow")
  seen = []

  def as_dataset(self, split, *args, **kwargs):
    seen.append((self.name, self.builder_config.name if self.builder_config else None, str(split)))
    context = "Der Hund bellt."
    return tf.data.Dataset.from_tensor_slices({
        "id": [b"d1"], "title": [b"t"], "context": [context.encode()], "question": [b"Wer?"],
        "answers": {"text": tf.constant([[b"Hund"]]), "answer_start": tf.constant([[4]])}})

  with tfds.testing.mock_data(as_dataset_fn=as_dataset):
    examples = registry.get("xquad").read("test", "de", DataSource(kind="tfds"))
  assert [e.answers[0] for e in examples] == [("Hund", 4)]
  assert seen == [("xquad", "de", "test")]


def test_tfds_without_a_name_is_one_line():
  with pytest.raises(DataError, match=r"task 'udpos': data.kind 'tfds' needs data.tfds_name"):
    registry.get("udpos").read("test", "de", DataSource(kind="tfds"))


def test_anli_plus_reads_each_component_from_its_own_hub_default(tmp_path, monkeypatch):
  from xtjax.tasks import classification
  from xtjax.tasks.source_check import hub_defaults

  nli = {"premise": "A dog.", "hypothesis": "An animal.", "label": 0}
  anli = write_hub_repo(tmp_path / "anli", {"plain_text": {f"dev_r{r}": [{**nli, "uid": f"r{r}"}] for r in (1, 2, 3)}})
  snli = write_hub_repo(tmp_path / "snli", {"plain_text": {"validation": [nli, {**nli, "label": -1}]}})
  glue = write_hub_repo(tmp_path / "glue", {"mnli": {"validation_matched": [{**nli, "idx": 7}]}})
  local = {"facebook/anli": anli, "stanfordnlp/snli": snli, "nyu-mll/glue": glue}

  def local_defaults(component):
    hub = hub_defaults(component)
    return type(hub)(**{**hub.__dict__, "hf_id": str(local[hub.hf_id])})

  monkeypatch.setattr(classification, "hub_defaults", local_defaults)
  examples = registry.get("anli_plus").read("dev", "en", HF)
  assert [e.guid.split("-")[0] for e in examples] == ["anli_r1", "anli_r2", "anli_r3", "mnli", "snli"]
  assert {e.label for e in examples} == {"entailment"}  # SNLI's unlabelled row (-1) is left out


def test_hellaswag_reads_the_parquet_conversion_layout(tmp_path, monkeypatch):
  """Rowan/hellaswag's main holds a loading script; its pinned refs/convert/parquet branch has
  default/{split}/0000.parquet and no README, which `datasets` infers."""
  import pyarrow as pa
  import pyarrow.parquet as pq

  task = registry.get("hellaswag")
  assert task.hub.hf_revision == "refs/convert/parquet"
  folder = tmp_path / "hellaswag" / "default" / "validation"
  folder.mkdir(parents=True)
  row = {"ind": 4, "ctx_a": "A man", "ctx_b": "then", "endings": ["a", "b", "c", "d"], "label": "2"}
  pq.write_table(pa.Table.from_pylist([row]), folder / "0000.parquet")
  use_local_repo(monkeypatch, task, tmp_path / "hellaswag")
  assert [(e.choices, e.label) for e in task.read("dev", "en", HF)] == [(("a", "b", "c", "d"), 2)]


def test_feature_cache_key_changes_with_the_default_source(monkeypatch):
  """A cache built from the old udpos default (universal_dependencies en_ewt) is not reused."""
  import dataclasses

  from fixtures import make_wordpiece_tokenizer
  from xtjax.data.cache import feature_key
  from xtjax.tasks.base import FeatureSettings

  task, tok, settings = registry.get("udpos"), make_wordpiece_tokenizer(), FeatureSettings()
  now, _ = feature_key(task, "test", "de", HF, tok, settings)
  monkeypatch.setattr(task, "hub", dataclasses.replace(task.hub, hf_id="universal_dependencies", hf_config="en_ewt"))
  before, _ = feature_key(task, "test", "de", HF, tok, settings)
  assert now != before


def test_a_config_on_the_parquet_conversion_branch_is_its_folder(tmp_path, monkeypatch):
  """aps/super_glue is pinned to refs/convert/parquet, which holds copa/{split}/0000.parquet and no card."""
  import dataclasses

  import pyarrow as pa
  import pyarrow.parquet as pq

  from xtjax.data import sources

  for config in ("copa", "cb"):
    (tmp_path / "sg" / config / "validation").mkdir(parents=True)
    row = {"premise": f"{config} premise", "choice1": "a", "choice2": "b", "question": "cause", "label": 1, "idx": 0}
    pq.write_table(pa.Table.from_pylist([row]), tmp_path / "sg" / config / "validation" / "0000.parquet")
  task = registry.get("copa")
  assert task.hub.hf_revision == sources.PARQUET_BRANCH
  seen = {}
  real = __import__("datasets").load_dataset

  def load_dataset(path, config=None, **kwargs):  # a local folder cannot take a revision
    seen.update(config=config, data_dir=kwargs.get("data_dir"), revision=kwargs.pop("revision", None))
    return real(path, config, **kwargs)

  monkeypatch.setattr("datasets.load_dataset", load_dataset)
  monkeypatch.setattr(task, "hub", dataclasses.replace(task.hub, hf_id=str(tmp_path / "sg")))
  assert [e.context for e in task.read("dev", "en", HF)] == ["copa premise"]
  assert seen == {"config": None, "data_dir": "copa", "revision": sources.PARQUET_BRANCH}
