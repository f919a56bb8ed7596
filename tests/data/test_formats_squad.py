"""SQuAD-format reader: tiny upstream-format fixtures, malformed files, and the real XQuAD/SQuAD."""

import pytest

from xtjax.data.formats import QAExample, read_squad

CONTEXT = "Denver Broncos won Super Bowl 50 in Santa Clara."


def _squad(qas, version="1.1"):
  return {"version": version, "data": [{"title": "Super_Bowl_50",
                                        "paragraphs": [{"context": CONTEXT, "qas": qas}]}]}


def test_reads_squad_v1(write):
  path = write("dev-v1.1.json", _squad([
      {"id": "q1", "question": "Who won?", "answers": [
          {"text": "Denver Broncos", "answer_start": 0}, {"text": "Broncos", "answer_start": 7}]},
      {"id": "q2", "question": "Where?", "answers": [{"text": "Santa Clara", "answer_start": 36}]},
  ]))
  result = read_squad(path)
  assert result.examples == [
      QAExample("q1", "Who won?", CONTEXT, (("Denver Broncos", 0), ("Broncos", 7)), False),
      QAExample("q2", "Where?", CONTEXT, (("Santa Clara", 36),), False),
  ]
  assert result.skipped == {"answer_span_mismatch": 0}
  assert result.counts == {"articles": 1, "paragraphs": 1, "questions": 2, "answers": 3,
                           "unanswerable": 0, "unlabelled": 0}


def test_reads_squad_v2_unanswerable(write):
  path = write("dev-v2.0.json", _squad([
      {"id": "a", "question": "Who won?", "is_impossible": False,
       "answers": [{"text": "Denver Broncos", "answer_start": 0}]},
      {"id": "b", "question": "Who lost in 1990?", "is_impossible": True, "answers": [],
       "plausible_answers": [{"text": "Denver", "answer_start": 0}]},
  ], version="v2.0"))
  result = read_squad(path)
  assert result.examples[1] == QAExample("b", "Who lost in 1990?", CONTEXT, (), True)
  assert result.counts["unanswerable"] == 1
  assert result.counts["questions"] == 2


def test_label_stripped_questions_are_counted(write):
  path = write("test-xx.json", _squad([{"id": "q", "question": "Who?", "answers": []}]))
  result = read_squad(path)
  assert result.examples == [QAExample("q", "Who?", CONTEXT, (), False)]
  assert result.counts["unlabelled"] == 1


def test_answer_start_mismatch_names_file_and_question(write, expect_error):
  path = write("xquad.xx.json", _squad([
      {"id": "q-bad", "question": "Who?", "answers": [{"text": "Broncos", "answer_start": 1}]}]))
  with expect_error(path, "q-bad", "answer_start", "'Broncos'"):
    read_squad(path)


def test_answer_start_mismatch_can_be_skipped_and_counted(write):
  path = write("x.json", _squad([
      {"id": "bad", "question": "Who?", "answers": [{"text": "Broncos", "answer_start": 1}]},
      {"id": "ok", "question": "Who?", "answers": [{"text": "Broncos", "answer_start": 7}]}]))
  result = read_squad(path, on_bad_span="skip")
  assert [e.guid for e in result.examples] == ["ok"]
  assert result.skipped == {"answer_span_mismatch": 1}


@pytest.mark.parametrize("qa, parts", [
    ({"id": "q", "question": "Who?", "is_impossible": True,
      "answers": [{"text": "Denver", "answer_start": 0}]}, ["is_impossible is true"]),
    ({"id": "q", "answers": []}, ["qas[0] (id q).question", "missing"]),
    ({"id": "q", "question": "Who?", "answers": [{"text": "Denver", "answer_start": "0"}]},
     ["answer_start", "expected an integer"]),
    ({"id": 7, "question": "Who?", "answers": []}, ["qas[0].id", "expected a string"]),
])
def test_malformed_questions(write, expect_error, qa, parts):
  path = write("bad.json", _squad([qa]))
  with expect_error(path, "data[0].paragraphs[0]", *parts):
    read_squad(path)


def test_duplicate_ids_and_bad_json(write, expect_error):
  qa = {"id": "q", "question": "Who?", "answers": []}
  path = write("dup.json", _squad([qa, qa]))
  with expect_error(path, "duplicate question id"):
    read_squad(path)
  path = write("broken.json", '{"data": [\n  {"paragraphs": ]}')
  with expect_error(path, f"{path}:2", "invalid JSON"):
    read_squad(path)


XQUAD_LANGS = "ar de el en es hi ro ru th tr vi zh".split()


def test_real_xquad_all_languages(shared_data):
  folder = shared_data("xquad")
  ids = None
  for lang in XQUAD_LANGS:
    result = read_squad(folder / f"xquad.{lang}.json")
    assert result.counts["questions"] == 1190, lang
    assert result.counts["answers"] == 1190 and result.counts["paragraphs"] == 240, lang
    assert result.skipped == {"answer_span_mismatch": 0}
    lang_ids = [e.guid for e in result.examples]
    assert ids is None or lang_ids == ids, f"{lang}: ids are not parallel"
    ids = lang_ids


def test_real_squad_dev(shared_data):
  result = read_squad(shared_data("squad", "dev-v1.1.json"))
  assert result.counts["questions"] == 10570
  assert result.counts["paragraphs"] == 2067 and result.counts["answers"] == 34726
  first = result.examples[0]
  assert first.guid == "56be4db0acb8001400a502ec"
  assert first.answers[0] == ("Denver Broncos", 177)
