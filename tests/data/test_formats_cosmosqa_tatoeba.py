"""Cosmos QA (CSV and jsonl) and Tatoeba readers."""

import pytest

from xtjax.data.formats import (TATOEBA_LANG3_TO_LANG2, MultipleChoiceExample, ParallelPair,
                                read_cosmosqa, read_tatoeba)

COSMOS_HEADER = "id,context,question,answer0,answer1,answer2,answer3,label\n"


def test_cosmosqa_csv_with_quoted_commas(write):
  path = write("valid.csv", COSMOS_HEADER
               + 'q1,"I woke up , and it rained .",Why ?,"Rain , again .",Sun .,Wind .,None .,0\n'
               + 'q2,Short .,What ?,a,b,c,d,3\n')
  assert read_cosmosqa(path).examples == [
      MultipleChoiceExample("q1", "I woke up , and it rained .", "Why ?",
                            ("Rain , again .", "Sun .", "Wind .", "None ."), 0),
      MultipleChoiceExample("q2", "Short .", "What ?", ("a", "b", "c", "d"), 3),
  ]


def test_cosmosqa_jsonl_test_file(write):
  row = {"id": "t1", "context": "C .", "question": "Q ?", "answer0": "a", "answer1": "b",
         "answer2": "c", "answer3": "d"}
  assert read_cosmosqa(write("test.jsonl", [row])).examples == [
      MultipleChoiceExample("t1", "C .", "Q ?", ("a", "b", "c", "d"), None)]


@pytest.mark.parametrize("body, parts", [
    ("q1,c,q,a,b,c,d,4\n", [":2 [label]", "'4'"]),
    ("q1,c,q,a,b,c,d\n", [":2", "expected 8 columns, found 7"]),
])
def test_cosmosqa_malformed(write, expect_error, body, parts):
  path = write("bad.csv", COSMOS_HEADER + body)
  with expect_error(path, *parts):
    read_cosmosqa(path)


def test_cosmosqa_bad_header(write, expect_error):
  path = write("bad.csv", "id,context,question\n")
  with expect_error(path, f"{path}:1", "expected header"):
    read_cosmosqa(path)


def test_real_cosmosqa_dev(shared_data):
  result = read_cosmosqa(shared_data("cosmosqa", "valid.csv"))
  assert len(result) == 2985
  assert {e.label for e in result.examples} == {0, 1, 2, 3}
  first = result.examples[0]
  assert first.question == "Why is this person asking about divorce ?"
  assert first.choices[1] == "He wants to get married to a different person ." and first.label == 1


def test_tatoeba_pairs_and_language_codes(write):
  write("v1/tatoeba.deu-eng.deu", "Hallo.\nDanke.\n")
  folder = write("v1/tatoeba.deu-eng.eng", "Hello.\nThanks.\n").parent
  expected = [ParallelPair("0", "Hallo.", "Hello.", "de", "en"),
              ParallelPair("1", "Danke.", "Thanks.", "de", "en")]
  assert read_tatoeba(folder, "de").examples == expected
  assert read_tatoeba(folder, "deu").examples == expected
  assert len(TATOEBA_LANG3_TO_LANG2) == 41 and TATOEBA_LANG3_TO_LANG2["cmn"] == "zh"


def test_tatoeba_errors(write, expect_error):
  src = write("v1/tatoeba.fra-eng.fra", "Bonjour.\nMerci.\n")
  folder = write("v1/tatoeba.fra-eng.eng", "Hello.\n").parent
  with expect_error(src, "tatoeba.fra-eng.eng", "2 lines", "has 1"):
    read_tatoeba(folder, "fr")
  eng = write("v1/tatoeba.fra-eng.eng", "Hello.\n\n")
  with expect_error(eng, f"{eng}:2", "empty line"):
    read_tatoeba(folder, "fr")
  with pytest.raises(ValueError, match="no Tatoeba language"):
    read_tatoeba(folder, "xx")


TATOEBA_SIZES = {"de": 1000, "jv": 205, "te": 234, "ta": 307, "sw": 390, "th": 548, "kk": 575,
                 "ml": 687, "ka": 746, "az": 1000, "ro": 1000}


def test_real_tatoeba(shared_data):
  folder = shared_data("tatoeba", "v1")
  for lang, size in TATOEBA_SIZES.items():
    assert len(read_tatoeba(folder, lang)) == size, lang
  first = read_tatoeba(folder, "de").examples[0]
  assert first == ParallelPair("0", "Maria sagte, sie wisse nicht, wo Tom sei.",
                               "Mary said she didn't know where Tom was.", "de", "en")
