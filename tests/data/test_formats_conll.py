"""CoNLL-U, PAN-X, supertag and CCGbank AUTO readers."""

import pytest

from xtjax.data.formats import (TaggingExample, read_ccgbank_auto, read_conllu, read_panx,
                                read_supertags)


def _row(*cells):
  return "\t".join(cells) + "\n"


CONLLU = (
    "# newdoc id = doc1\n"
    "# sent_id = s1\n"
    "# text = Wir gehen zum Haus.\n"
    + _row("1", "Wir", "wir", "PRON", "PPER", "_", "2", "nsubj", "_", "_")
    + _row("2", "gehen", "gehen", "VERB", "VVFIN", "_", "0", "root", "_", "_")
    + _row("3-4", "zum", "_", "_", "_", "_", "_", "_", "_", "_")
    + _row("3", "zu", "zu", "ADP", "APPR", "_", "5", "case", "_", "_")
    + _row("4", "dem", "der", "DET", "ART", "_", "5", "det", "_", "_")
    + _row("5", "Haus", "Haus", "NOUN", "NN", "_", "2", "obl", "_", "_")
    + _row("5.1", "ging", "gehen", "VERB", "_", "_", "_", "_", "2:conj", "_")
    + _row("6", ".", ".", "PUNCT", "$.", "_", "2", "punct", "_", "_")
    + "\n"
    + _row("1", "Ja", "ja", "INTJ", "ITJ", "_", "0", "root", "_", "_")
    + "\n"
)


def test_conllu_skips_multiword_lines_and_empty_nodes(write):
  path = write("de_gsd-ud-test.conllu", CONLLU)
  result = read_conllu(path)
  assert result.examples == [
      TaggingExample("s1", ("Wir", "gehen", "zu", "dem", "Haus", "."),
                     ("PRON", "VERB", "ADP", "DET", "NOUN", "PUNCT")),
      TaggingExample("de_gsd-ud-test-1", ("Ja",), ("INTJ",)),
  ]
  assert result.skipped == {"multiword_token_lines": 1, "multiword_parts": 0, "empty_nodes": 1}
  assert result.counts == {"sentences": 2, "tokens": 7}


def test_conllu_fused_forms_take_the_span_head_tag(write):
  # Word 2 heads the span 1-2, so the fused token gets its tag (VERB), not the first word's.
  text = (_row("1-2", "xy", "_", "_", "_", "_", "_", "_", "_", "_")
          + _row("1", "x", "x", "PRON", "_", "_", "2", "obj", "_", "_")
          + _row("2", "y", "y", "VERB", "_", "_", "0", "root", "_", "_")
          + _row("3", "!", "!", "PUNCT", "_", "_", "2", "punct", "_", "_"))
  result = read_conllu(write("f.conllu", text), multiword="fused")
  assert result.examples == [TaggingExample("f-0", ("xy", "!"), ("VERB", "PUNCT"))]
  assert result.skipped["multiword_parts"] == 2
  fused = read_conllu(write("g.conllu", CONLLU), multiword="fused").examples[0]
  assert fused.tokens == ("Wir", "gehen", "zum", "Haus", ".")
  assert fused.labels == ("PRON", "VERB", "ADP", "NOUN", "PUNCT")


@pytest.mark.parametrize("line, parts", [
    ("1\tWir\twir\tPRON\tPPER\t_\t0\troot\t_\n", [":1", "expected 10", "found 9"]),
    (_row("1", "Wir", "wir", "PRONOUN", "_", "_", "0", "root", "_", "_"), [":1 [UPOS]"]),
    (_row("2", "Wir", "wir", "PRON", "_", "_", "0", "root", "_", "_"),
     [":1 [ID]", "expected word id 1"]),
])
def test_conllu_malformed_lines(write, expect_error, line, parts):
  path = write("bad.conllu", line)
  with expect_error(path, *parts):
    read_conllu(path)


def test_conllu_bad_multiword_range(write, expect_error):
  path = write("bad.conllu", "# sent_id = a\n" + _row("1-3", "xyz", *["_"] * 8)
               + _row("1", "x", "x", "X", *["_"] * 2, "0", "root", "_", "_"))
  with expect_error(path, f"{path}:2 [ID]", "runs past the sentence"):
    read_conllu(path)


def test_panx_raw_with_language_prefix(write):
  path = write("en-train", "en:EU\tB-ORG\nen:rejects\tO\n\nen:Peter\tB-PER\nen:Blackburn\tI-PER\n")
  result = read_panx(path)
  assert result.examples == [
      TaggingExample("en-train-0", ("EU", "rejects"), ("B-ORG", "O")),
      TaggingExample("en-train-1", ("Peter", "Blackburn"), ("B-PER", "I-PER")),
  ]
  assert result.counts == {"sentences": 2, "tokens": 4}


def test_panx_processed_and_unlabelled(write):
  labelled = read_panx(write("dev-de.tsv", "Berlin\tB-LOC\nruft\tO\n"))
  assert labelled.examples == [TaggingExample("dev-de-0", ("Berlin", "ruft"), ("B-LOC", "O"))]
  unlabelled = read_panx(write("test-de.tsv", "Berlin\nruft\n\n12:30\n"))
  assert unlabelled.examples == [TaggingExample("test-de-0", ("Berlin", "ruft"), None),
                                 TaggingExample("test-de-1", ("12:30",), None)]


@pytest.mark.parametrize("text, parts", [
    ("en:EU\tB-ORG\nde:EU\tO\n", [":2 [token]", "expected en:"]),
    ("EU\tB-ORG\nrejects\n", [":2", "1 columns here but 2"]),
    ("EU\tB-ORGANISATION X\n", [":1 [NER tag]"]),
    ("EU\tB-ORG\tX\n", [":1", "found 3"]),
])
def test_panx_malformed(write, expect_error, text, parts):
  path = write("panx.tsv", text)
  with expect_error(path, *parts):
    read_panx(path)


def test_supertags(write):
  path = write("ccg.train", "Pierre\tN/N\nVinken\tN\n,\t,\n\nHe\tNP\nsleeps\tS[dcl]\\NP\n")
  assert read_supertags(path).examples == [
      TaggingExample("ccg-0", ("Pierre", "Vinken", ","), ("N/N", "N", ",")),
      TaggingExample("ccg-1", ("He", "sleeps"), ("NP", "S[dcl]\\NP")),
  ]


AUTO = (
    "ID=wsj_0001.1 PARSER=GOLD NUMPARSE=1\n"
    "(<T S[dcl] 0 2> (<L NP NNP NNP Vinken NP>) (<T S[dcl]\\NP 0 2> "
    "(<L (S[dcl]\\NP)/NP VBZ VBZ is (S[dcl]\\NP_10)/NP_11>) (<L NP NN NN chairman NP>) ) )\n"
)


def test_ccgbank_auto(write, expect_error):
  result = read_ccgbank_auto(write("wsj_0001.auto", AUTO))
  assert result.examples == [TaggingExample(
      "wsj_0001.1", ("Vinken", "is", "chairman"), ("NP", "(S[dcl]\\NP)/NP", "NP"))]
  path = write("bad.auto", AUTO.replace("<L NP NN NN chairman NP>", "<L NP chairman>"))
  with expect_error(path, f"{path}:2 [leaf]"):
    read_ccgbank_auto(path)
  path = write("headless.auto", AUTO.split("\n", 1)[1])
  with expect_error(path, f"{path}:1", "without an 'ID=' header"):
    read_ccgbank_auto(path)


def test_real_ud_english_ewt_dev(shared_data):
  result = read_conllu(shared_data("ud", "UD_English-EWT", "en_ewt-ud-dev.conllu"))
  assert result.counts == {"sentences": 2001, "tokens": 25147}
  assert result.skipped == {"multiword_token_lines": 359, "multiword_parts": 0, "empty_nodes": 4}
  first = result.examples[0]
  assert first.tokens[:4] == ("From", "the", "AP", "comes")
  assert first.labels[:4] == ("ADP", "DET", "PROPN", "VERB")


def test_real_ud_german_test_multiword(shared_data):
  path = shared_data("ud", "UD_German-GSD", "de_gsd-ud-test.conllu")
  result = read_conllu(path)
  assert result.counts == {"sentences": 977, "tokens": 16499}
  assert result.skipped["multiword_token_lines"] == 274
  fused = read_conllu(path, multiword="fused")
  assert fused.counts["tokens"] == 16499 - 274


def test_conllu_overlapping_multiword_tokens(write, expect_error):
  path = write("overlap.conllu", _row("1-2", "ab", *["_"] * 8) + _row("1-3", "abc", *["_"] * 8)
               + "".join(_row(str(i), w, w, "X", "_", "_", "0", "root", "_", "_")
                         for i, w in enumerate("abc", start=1)))
  with expect_error(path, f"{path}:2 [ID]", "overlap"):
    read_conllu(path)
