"""Tagging: first-sub-word label alignment (checked against per-word tokenisation), truncation,
post-processing back to words, label sets, hub rows, seqeval scores, real UD English-EWT dev."""

import numpy as np
import pytest

from tasks_support import SHARED_DATA, one_hot, unigram, wordpiece, write
from xtjax.data.formats import TaggingExample
from xtjax.data.sources import DataSource
from xtjax.errors import ConfigError, DataError
from xtjax.tasks import registry
from xtjax.tasks.base import FeatureSettings
from xtjax.tasks.tagging import PANX_LABELS, UPOS_LABELS

PANX = ("de:Angela\tB-PER\nde:Merkel\tI-PER\nde:besucht\tO\nde:Berlin\tB-LOC\nde:.\tO\n\n"
        "de:Der\tO\nde:schnelle\tO\nde:Fuchs\tB-ORG\n\n")


def expected_first_positions(tok, words, max_length):
  """Independent reference: each word tokenised alone; position 0 is the start token."""
  lengths = [len(ids) for ids in tok(list(words), add_special_tokens=False)["input_ids"]]
  starts, pos = [], 1
  for n in lengths:
    starts.append(pos if pos < max_length - 1 else -1)
    pos += n
  return starts


def assert_aligned(task, examples, features, tok, max_length):
  index = {t: i for i, t in enumerate(task.labels)}
  labels = features.arrays["labels"]
  for i, example in enumerate(examples):
    starts = expected_first_positions(tok, example.tokens, max_length)
    np.testing.assert_array_equal(features.extra.word_starts[i], starts)
    want = np.full(max_length, -100)
    for w, pos in enumerate(starts):
      if pos >= 0:
        want[pos] = index[example.labels[w]]
    np.testing.assert_array_equal(labels[i], want, err_msg=example.guid)


@pytest.mark.parametrize("make_tok", [wordpiece, unigram], ids=["wordpiece", "unigram"])
def test_first_subword_alignment_is_exact(tmp_path, make_tok):
  task = registry.get("panx")
  examples = task.read("test", "de", DataSource(path=str(write(tmp_path, "panx-de.tsv", PANX))))
  assert task.labels == PANX_LABELS == ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
  tok = make_tok()
  features = task.featurize(examples, tok, FeatureSettings(max_length=40))
  assert features.stats["words_truncated"] == 0
  assert_aligned(task, examples, features, tok, 40)
  perfect = task.predict(one_hot(features.arrays["labels"], 7), features, examples, None)
  assert perfect == [("B-PER", "I-PER", "O", "B-LOC", "O"), ("O", "O", "B-ORG")]
  assert task.score(perfect, examples, "de") == {"precision": 100.0, "recall": 100.0, "f1": 100.0}


def test_truncated_words_are_predicted_o_and_counted(tmp_path):
  task = registry.get("panx")
  examples = task.read("test", "de", DataSource(path=str(write(tmp_path, "panx-de.tsv", PANX))))
  tok = wordpiece()
  features = task.featurize(examples, tok, FeatureSettings(max_length=10))
  assert_aligned(task, examples, features, tok, 10)
  lost = sum(int((s < 0).sum()) for s in features.extra.word_starts)
  assert lost > 0 and features.stats["words_truncated"] == lost and features.stats["truncated"] >= 1
  predictions = task.predict(one_hot(features.arrays["labels"], 7), features, examples, None)
  assert all(len(p) == len(e.tokens) for p, e in zip(predictions, examples))
  # "Angela Merkel" keeps both first sub-words, "besucht Berlin ." are cut: predicted O.
  assert [list(s) for s in features.extra.word_starts] == [[1, 7, -1, -1, -1], [1, 2, 3]]
  assert predictions == [("B-PER", "I-PER", "O", "O", "O"), ("O", "O", "B-ORG")]
  # Gold spans PER, LOC, ORG; predicted PER, ORG: P = 2/2, R = 2/3, F1 = 80.
  assert task.score(predictions, examples, "de") == {"precision": 100.0, "recall": pytest.approx(200 / 3),
                                                      "f1": pytest.approx(80.0)}


def test_word_with_no_subword_becomes_unknown_token():
  task = registry.get("panx")
  example = TaggingExample("z", ("the", "\u200b", "fox"), ("O", "B-LOC", "O"))
  tok = wordpiece()
  features = task.featurize([example], tok, FeatureSettings(max_length=12))
  assert features.stats["words_unk_replaced"] == 1
  starts = features.extra.word_starts[0]
  assert (starts >= 0).all()
  assert tok.convert_ids_to_tokens(int(features.arrays["input_ids"][0, starts[1]])) == "[UNK]"
  assert features.arrays["labels"][0, starts[1]] == PANX_LABELS.index("B-LOC")


def test_udpos_conllu_scores_with_seqeval(tmp_path):
  conllu = ("# sent_id = a\n1\tThe\tthe\tDET\t_\t_\t2\tdet\t_\t_\n2\tfox\tfox\tNOUN\t_\t_\t3\tnsubj\t_\t_\n"
            "3\truns\trun\tVERB\t_\t_\t0\troot\t_\t_\n\n")
  task = registry.get("udpos")
  assert task.labels == UPOS_LABELS and len(UPOS_LABELS) == 17 and UPOS_LABELS[0] == "ADJ"
  examples = task.read("test", "en", DataSource(path=str(write(tmp_path, "en.conllu", conllu))))
  features = task.featurize(examples, unigram(), FeatureSettings(max_length=16))
  assert_aligned(task, examples, features, unigram(), 16)
  assert task.score([("DET", "NOUN", "VERB")], examples, "en")["f1"] == 100.0
  # seqeval reads POS tags as IOB (XTREME): gold spans DET | NOUN | VERB; "VERB VERB" is one span,
  # so 1 of 2 predicted spans is right and 1 of 3 gold spans found: P 50, R 33.3, F1 40.
  wrong = task.score([("DET", "VERB", "VERB")], examples, "en")
  assert wrong == {"precision": 50.0, "recall": pytest.approx(100 / 3), "f1": pytest.approx(40.0)}
  assert task.submission_text([("DET", "NOUN", "VERB")], examples) == ("tsv", "DET\nNOUN\nVERB\n\n")


def test_ccg_label_set_is_built_from_training_data(tmp_path):
  task = registry.get("ccg")
  saved = task.labels
  try:
    task.labels = None
    with pytest.raises(ConfigError, match="read the train split first"):
      _ = task.num_labels
    train = write(tmp_path, "train.tsv", "The\tNP/N\nfox\tN\nruns\tS\\NP\n\nA\tNP/N\ndog\tN\n\n")
    dev = write(tmp_path, "dev.tsv", "The\tNP/N\ncat\tN\nsleeps\t(S\\NP)/NP\n\n")
    source = DataSource(files={"train": str(train), "dev": str(dev)})
    task.read("train", "en", source)
    assert task.labels == ("N", "NP/N", "S\\NP") and task.num_labels == 3
    dev_examples = task.read("dev", "en", source)
    assert task.labels == ("N", "NP/N", "S\\NP")  # dev never changes the ids
    features = task.featurize(dev_examples, wordpiece(), FeatureSettings(max_length=16))
    assert features.stats["unknown_labels"] == 1
    predictions = task.predict(one_hot(features.arrays["labels"], 3), features, dev_examples, None)
    assert task.score(predictions, dev_examples, "en") == {"accuracy": pytest.approx(200 / 3)}
    assert task.export_state() == {"labels": ["N", "NP/N", "S\\NP"]}
    labels_file = write(tmp_path, "labels.txt", "X\nY\n")
    task.read("dev", "en", DataSource(files={"dev": str(dev), "labels": str(labels_file)}))
    assert task.labels == ("X", "Y")
  finally:
    task.labels = saved


def test_unknown_fixed_tag_and_malformed_line(tmp_path):
  task = registry.get("panx")
  with pytest.raises(DataError, match="word 0 has tag 'B-MISC'"):
    task.featurize([TaggingExample("m", ("x",), ("B-MISC",))], wordpiece(), FeatureSettings(max_length=8))
  bad = write(tmp_path, "bad.tsv", "de:Ja\tO\nde:Nein\tQ-PER\n")
  with pytest.raises(DataError, match=r"bad\.tsv:2 \[NER tag\]"):
    task.read("test", "de", DataSource(path=str(bad)))


def test_hub_rows_wikiann_and_universal_dependencies(tmp_path):
  write(tmp_path, "validation.jsonl", [{"tokens": ["Angela", "Merkel", "in", "Berlin"], "ner_tags": [1, 2, 0, 5],
                                        "langs": ["de"] * 4}])
  source = DataSource(kind="hf", hf_id="json", path=str(tmp_path / "{split}.jsonl"), split_names={"dev": "validation"})
  example = registry.get("panx").read("dev", "de", source)[0]
  assert example.labels == ("B-PER", "I-PER", "O", "B-LOC")
  # universal_dependencies upos ids: 8 DET, 0 NOUN, 13 '_' (a multiword token row, dropped).
  write(tmp_path / "ud", "validation.jsonl", [{"idx": "s1", "tokens": ["the", "dog", "don't"], "upos": [8, 0, 13]}])
  source = DataSource(kind="hf", hf_id="json", path=str(tmp_path / "ud" / "{split}.jsonl"),
                      split_names={"dev": "validation"})
  example = registry.get("udpos").read("dev", "en", source)[0]
  assert example == TaggingExample("s1", ("the", "dog"), ("DET", "NOUN"))


EWT_DEV = SHARED_DATA / "ud" / "UD_English-EWT" / "en_ewt-ud-dev.conllu"


@pytest.mark.skipif(not EWT_DEV.is_file(), reason="shared UD data absent")
def test_real_ud_ewt_dev_alignment_and_perfect_score():
  task = registry.get("udpos")
  examples = task.read("dev", "en", DataSource(path=str(EWT_DEV)))
  assert len(examples) == 2001
  tok = wordpiece()
  features = task.featurize(examples, tok, FeatureSettings(max_length=128))
  assert_aligned(task, examples, features, tok, 128)
  predictions = task.predict(one_hot(features.arrays["labels"], 17), features, examples, None)
  scores = task.score(predictions, examples, "en")
  if features.stats["words_truncated"] == 0:
    assert scores["f1"] == 100.0
  else:
    assert scores["precision"] < 100.0 or scores["recall"] < 100.0
  stats = task.stats(examples, features)
  assert stats["examples"] == 2001 and stats["label_distribution"]["NOUN"] > 1000
