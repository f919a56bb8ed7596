"""XNLI, MNLI, PAWS-X, QQP, XTREME pair files and BUCC 2018 readers."""

import pytest

from xtjax.data.formats import (ClassificationExample, RetrievalCandidate, RetrievalQuery,
                                read_bucc, read_mnli, read_pawsx, read_qqp, read_xnli,
                                read_xtreme_pairs)


def _tsv(*rows):
  return "".join("\t".join(row) + "\n" for row in rows)


XNLI_HEADER = ("language gold_label sentence1_binary_parse sentence2_binary_parse sentence1_parse "
               "sentence2_parse sentence1 sentence2 promptID pairID annotator_labels match "
               "sentence1_tokenized sentence2_tokenized").split()


def _xnli_row(lang, label, s1, s2, pair_id):
  return (lang, label, "_", "_", "_", "_", s1, s2, "1", pair_id, label, "True", s1, s2)


def test_xnli_all_and_one_language(write):
  path = write("xnli.dev.tsv", _tsv(
      XNLI_HEADER,
      _xnli_row("de", "neutral", "Er sagte \"ja\".", "Er sprach.", "1"),
      _xnli_row("en", "contradiction", "He said yes.", "He said no.", "1"),
  ))
  both = read_xnli(path)
  assert both.examples == [
      ClassificationExample("de-1", "Er sagte \"ja\".", "Er sprach.", "neutral"),
      ClassificationExample("en-1", "He said yes.", "He said no.", "contradiction"),
  ]
  assert both.skipped == {"other_language": 0}
  english = read_xnli(path, language="en")
  assert [e.guid for e in english.examples] == ["en-1"]
  assert english.skipped == {"other_language": 1}


def test_xnli_malformed(write, expect_error):
  path = write("xnli.test.tsv", _tsv(XNLI_HEADER, _xnli_row("de", "maybe", "a", "b", "3")))
  with expect_error(path, f"{path}:2 [gold_label]", "'maybe'"):
    read_xnli(path)
  path = write("short.tsv", _tsv(XNLI_HEADER, ("de", "neutral", "a")))
  with expect_error(path, f"{path}:2", "expected 14", "found 3"):
    read_xnli(path)
  path = write("noheader.tsv", _tsv(("de", "neutral", "a", "b")))
  with expect_error(path, f"{path}:1", "header lacks"):
    read_xnli(path)


GLUE_MNLI_HEADER = ("index promptID pairID genre sentence1_binary_parse sentence2_binary_parse "
                    "sentence1_parse sentence2_parse sentence1 sentence2 label1 gold_label").split()


def test_mnli_glue_train(write):
  path = write("train.tsv", _tsv(
      GLUE_MNLI_HEADER,
      ("0", "31193", "31193n", "government", "_", "_", "_", "_", "Conceptually \"cream\" skimming.",
       "Product and geography.", "neutral", "neutral"),
  ))
  assert read_mnli(path).examples == [ClassificationExample(
      "31193n", "Conceptually \"cream\" skimming.", "Product and geography.", "neutral")]


def test_mnli_original_dev_skips_no_gold_label(write):
  header = ("gold_label sentence1 sentence2 promptID pairID genre label1 label2").split()
  path = write("multinli_1.0_dev_matched.txt", _tsv(
      header, ("-", "a", "b", "1", "1e", "fiction", "neutral", "entailment"),
      ("entailment", "c", "d", "2", "2e", "fiction", "entailment", "entailment")))
  result = read_mnli(path)
  assert result.examples == [ClassificationExample("2e", "c", "d", "entailment")]
  assert result.skipped == {"no_gold_label": 1}


def test_mnli_xnli_mt_train_and_glue_test(write):
  path = write("multinli.train.en.tsv", _tsv(("premise", "hypo", "label"),
                                             ("It rains .", "It is dry .", "contradictory")))
  assert read_mnli(path).examples == [ClassificationExample(
      "multinli.train.en-2", "It rains .", "It is dry .", "contradiction")]
  header = "index promptID pairID genre sentence1 sentence2".split()
  path = write("test_matched.tsv", _tsv(header, ("0", "1", "9n", "slate", "a", "b")))
  assert read_mnli(path).examples == [ClassificationExample("9n", "a", "b", None)]


def test_pawsx(write, expect_error):
  path = write("test_2k.tsv", _tsv(("id", "sentence1", "sentence2", "label"),
                                   ("1", "Die Katze schläft.", "Schläft die Katze?", "0")))
  assert read_pawsx(path).examples == [
      ClassificationExample("1", "Die Katze schläft.", "Schläft die Katze?", "0")]
  path = write("bad.tsv", _tsv(("id", "sentence1", "sentence2", "label"), ("1", "a", "b", "2")))
  with expect_error(path, f"{path}:2 [label]"):
    read_pawsx(path)


def test_qqp_train_and_test(write):
  path = write("train.tsv", _tsv(("id", "qid1", "qid2", "question1", "question2", "is_duplicate"),
                                 ("133273", "213221", "213222", "How?", "Why?", "1")))
  assert read_qqp(path).examples == [ClassificationExample("133273", "How?", "Why?", "1")]
  path = write("test.tsv", _tsv(("id", "question1", "question2"), ("0", "A?", "B?")))
  assert read_qqp(path).examples == [ClassificationExample("0", "A?", "B?", None)]


def test_xtreme_processed_pairs(write, expect_error):
  path = write("dev-de.tsv", _tsv(("a", "b", "neutral"), ("c", "d", "entailment")))
  result = read_xtreme_pairs(path, labels=("entailment", "neutral", "contradiction"))
  assert result.examples == [ClassificationExample("dev-de-1", "a", "b", "neutral"),
                             ClassificationExample("dev-de-2", "c", "d", "entailment")]
  path = write("test-de.tsv", _tsv(("a", "b"), ("c", "d", "neutral")))
  with expect_error(path, f"{path}:2", "3 columns here but 2"):
    read_xtreme_pairs(path, labels=("neutral",))


@pytest.fixture
def bucc_dir(write):
  write("bucc/de-en.training.de", _tsv(("de-000000001", "Guten Tag."), ("de-000000002", "Nein.")))
  write("bucc/de-en.training.en", _tsv(("en-000000001", "No."), ("en-000000002", "Good day.")))
  write("bucc/de-en.training.gold", _tsv(("de-000000001", "en-000000002")))
  return write("bucc/de-en.test.de", _tsv(("de-000000001", "Hallo."))).parent


def test_bucc_with_gold(bucc_dir):
  result = read_bucc(bucc_dir, "de", "training")
  assert result.examples == [RetrievalQuery("de-000000001", "de", "Guten Tag.", ("en-000000002",)),
                             RetrievalQuery("de-000000002", "de", "Nein.", ())]
  assert result.candidates == [RetrievalCandidate("en-000000001", "en", "No."),
                               RetrievalCandidate("en-000000002", "en", "Good day.")]
  assert result.counts == {"source_sentences": 2, "target_sentences": 2, "gold_pairs": 1}


def test_bucc_errors(bucc_dir, write, expect_error):
  gold = write("bucc/de-en.training.gold", _tsv(("de-000000009", "en-000000002")))
  with expect_error(gold, f"{gold}:1 [source id]", "de-000000009"):
    read_bucc(bucc_dir, "de", "training")
  with expect_error(bucc_dir / "de-en.test.en", "no such file"):
    read_bucc(bucc_dir, "de", "test")
  wrong = write("bucc/de-en.test.en", _tsv(("de-000000001", "Hello.")))
  with expect_error(wrong, f"{wrong}:1 [id]", "does not start with 'en-'"):
    read_bucc(bucc_dir, "de", "test")
