"""Accuracy, per-language averaging and seqeval span F1 (NER and the UD-POS quirk)."""

import pytest

from xtjax.errors import DataError
from xtjax.metrics import accuracy, average_over_languages, tagging_scores


def test_accuracy():
  assert accuracy([1, 2, 3, 4], [1, 2, 0, 4]) == 75.0
  assert accuracy(["entailment", "neutral", "contradiction"],
                  ["entailment", "neutral", "neutral"]) == 100.0 * 2 / 3
  with pytest.raises(DataError):
    accuracy([1, 2], [1])
  with pytest.raises(DataError):
    accuracy([], [])


def test_average_over_languages_weights_languages_equally():
  per_lang = {"de": {"f1": 80.0, "precision": 70.0}, "es": {"f1": 70.0}, "zh": {"f1": 60.0}}
  assert average_over_languages(per_lang) == {"f1": 70.0, "precision": 70.0}


NER_GOLD = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O", "B-LOC"]]


def test_ner_entity_counts():
  # Gold spans: MISC 2-4, PER 0-1, LOC 3. The truncated MISC span is wrong; PER and LOC match.
  pred = [["O", "O", "B-MISC", "I-MISC", "O", "O"], ["B-PER", "I-PER", "O", "B-LOC"]]
  out = tagging_scores(pred, NER_GOLD)
  assert out == pytest.approx({"precision": 200 / 3, "recall": 200 / 3, "f1": 200 / 3}, abs=1e-12)
  # One spurious ORG: 4 predicted spans, 2 correct, 3 gold -> P 1/2, R 2/3, F1 4/7.
  pred = [["O", "O", "B-MISC", "I-MISC", "O", "O"], ["B-PER", "I-PER", "B-ORG", "B-LOC"]]
  out = tagging_scores(pred, NER_GOLD)
  assert out == pytest.approx({"precision": 50.0, "recall": 200 / 3, "f1": 400 / 7}, abs=1e-12)
  assert tagging_scores(NER_GOLD, NER_GOLD)["f1"] == 100.0


def test_pos_tags_are_scored_as_spans_not_tokens():
  # seqeval reads 'NOUN' as tag 'N' of type 'OUN', so the two gold NOUNs are one span:
  # gold OUN(0-1) ERB(2) CONJ(3) RON(4); pred OUN(0) ERB(1-2) CONJ(3) RON(4) -> 2 of 4 match,
  # although 4 of 5 tokens are right.
  gold = [["NOUN", "NOUN", "VERB", "SCONJ", "PRON"]]
  pred = [["NOUN", "VERB", "VERB", "SCONJ", "PRON"]]
  assert tagging_scores(pred, gold) == {"precision": 50.0, "recall": 50.0, "f1": 50.0}
  assert tagging_scores(pred, gold, scheme="seqeval") == {"precision": 50.0, "recall": 50.0, "f1": 50.0}
  # With seqeval >= 1.0, CCONJ and SCONJ both have type 'CONJ'; XTREME's 0.0.12 spans keep them apart.
  assert tagging_scores([["SCONJ"]], [["CCONJ"]], scheme="seqeval")["f1"] == 100.0
  assert tagging_scores([["SCONJ"]], [["CCONJ"]])["f1"] == 0.0


def test_tagging_length_mismatch():
  with pytest.raises(DataError, match="sentence 0"):
    tagging_scores([["O"]], [["O", "O"]])
  with pytest.raises(DataError):
    tagging_scores([["O"]], [])


def test_xtreme_scheme_matches_seqeval_on_ner_and_keeps_whole_pos_types():
  from xtjax.metrics.tagging import tagging_scores

  gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG", "I-ORG", "I-ORG", "O"]]
  pred = [["B-PER", "I-PER", "O", "B-ORG"], ["O", "B-ORG", "I-ORG", "O", "O"]]
  assert tagging_scores(pred, gold) == pytest.approx(tagging_scores(pred, gold, scheme="seqeval"))
  # Gold PER, LOC, ORG(3 tokens); predicted PER, ORG, ORG(2 tokens): only PER matches.
  assert tagging_scores(pred, gold)["f1"] == pytest.approx(100.0 / 3)
  # CCONJ vs SCONJ: seqeval >= 1.0 sees both as type 'CONJ'; 0.0.12 (XTREME) keeps them apart.
  gold_pos = [["NOUN", "CCONJ", "VERB"]]
  pred_pos = [["NOUN", "SCONJ", "VERB"]]
  assert tagging_scores(pred_pos, gold_pos)["f1"] == pytest.approx(100.0 * 2 / 3)
  assert tagging_scores(pred_pos, gold_pos, scheme="seqeval")["f1"] > tagging_scores(pred_pos, gold_pos)["f1"]
