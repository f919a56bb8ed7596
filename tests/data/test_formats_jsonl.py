"""HellaSwag, CommonsenseQA, ANLI, SNLI/MNLI jsonl, COPA/XCOPA and Social IQa readers."""

import pytest

from xtjax.data.formats import (ClassificationExample, MultipleChoiceExample, read_anli,
                                read_commonsenseqa, read_copa, read_hellaswag, read_nli_jsonl,
                                read_siqa)

HELLASWAG = {"ind": 24, "activity_label": "Roof shingle removal", "ctx_a": "A man is on a roof.",
             "ctx_b": "he", "ctx": "A man is on a roof. he", "split": "val",
             "split_type": "indomain", "label": 3, "source_id": "activitynet~v_-JhWjGDPHMY",
             "endings": ["is using wrap.", "is ripping shingles.", "is holding a rubik's cube.",
                         "starts pulling up roofing."]}


def test_hellaswag(write):
  test_row = {k: v for k, v in HELLASWAG.items() if k != "label"} | {"ind": 25, "ctx_b": ""}
  result = read_hellaswag(write("hellaswag_val.jsonl", [HELLASWAG, test_row]))
  endings = tuple(HELLASWAG["endings"])
  assert result.examples == [
      MultipleChoiceExample("24", "A man is on a roof.", "he", endings, 3),
      MultipleChoiceExample("25", "A man is on a roof.", "", endings, None),
  ]


@pytest.mark.parametrize("change, parts", [
    ({"label": 4}, [":1 [label]", "[0, 4)"]),
    ({"endings": ["a", "b"]}, [":1 [endings]"]),
    ({"ctx_a": None}, [":1 [ctx_a]", "missing"]),
    ({"label": True}, [":1 [label]", "expected an integer"]),
])
def test_hellaswag_malformed(write, expect_error, change, parts):
  path = write("bad.jsonl", [HELLASWAG | change])
  with expect_error(path, *parts):
    read_hellaswag(path)


CSQA = {"answerKey": "B", "id": "075e483d21c29a511267ef62bedc0461",
        "question": {"question_concept": "punishing", "stem": "The sanctions were what?",
                     "choices": [{"label": "A", "text": "ignore"},
                                 {"label": "B", "text": "enforce"},
                                 {"label": "C", "text": "authoritarian"}]}}


def test_commonsenseqa(write, expect_error):
  test_row = {k: v for k, v in CSQA.items() if k != "answerKey"}
  result = read_commonsenseqa(write("dev_rand_split.jsonl", [CSQA, test_row]))
  choices = ("ignore", "enforce", "authoritarian")
  assert result.examples == [
      MultipleChoiceExample(CSQA["id"], None, "The sanctions were what?", choices, 1),
      MultipleChoiceExample(CSQA["id"], None, "The sanctions were what?", choices, None),
  ]
  path = write("bad.jsonl", [CSQA | {"answerKey": "E"}])
  with expect_error(path, f"{path}:1 [answerKey]"):
    read_commonsenseqa(path)
  flat = {"id": "x", "question": "flat HF schema?", "choices": {"label": ["A"], "text": ["a"]}}
  path = write("hf.jsonl", [flat])
  with expect_error(path, f"{path}:1 [question]", "expected an object"):
    read_commonsenseqa(path)


def test_anli(write, expect_error):
  rows = [{"uid": "a1", "context": "P.", "hypothesis": "H.", "label": "c", "reason": ""},
          {"uid": "a2", "premise": "P2.", "hypothesis": "H2.", "label": "e"}]
  assert read_anli(write("R1/dev.jsonl", rows)).examples == [
      ClassificationExample("a1", "P.", "H.", "contradiction"),
      ClassificationExample("a2", "P2.", "H2.", "entailment")]
  path = write("R2/bad.jsonl", [rows[0] | {"label": "x"}])
  with expect_error(path, f"{path}:1 [label]"):
    read_anli(path)


def test_snli_skips_and_counts_no_gold_label(write, expect_error):
  rows = [{"pairID": "1", "sentence1": "A.", "sentence2": "B.", "gold_label": "neutral"},
          {"pairID": "2", "sentence1": "C.", "sentence2": "D.", "gold_label": "-"}]
  result = read_nli_jsonl(write("snli_1.0_dev.jsonl", rows))
  assert result.examples == [ClassificationExample("1", "A.", "B.", "neutral")]
  assert result.skipped == {"no_gold_label": 1}
  path = write("broken.jsonl", '{"pairID": "1", "sentence1": "A.", "sentence2": "B.", '
                               '"gold_label": "neutral"}\n{"pairID": \n')
  with expect_error(path, f"{path}:2", "invalid JSON"):
    read_nli_jsonl(path)


XCOPA = {"premise": "Mees keeras kraani lahti.", "choice1": "Tualett täitus veega.",
         "choice2": "Tilast voolas vett.", "question": "effect", "label": 1, "idx": 0,
         "changed": False}


def test_copa(write, expect_error):
  assert read_copa(write("val.et.jsonl", [XCOPA])).examples == [MultipleChoiceExample(
      "0", "Mees keeras kraani lahti.", "effect",
      ("Tualett täitus veega.", "Tilast voolas vett."), 1)]
  path = write("bad.jsonl", [XCOPA, XCOPA | {"question": "why"}])
  with expect_error(path, f"{path}:2 [question]"):
    read_copa(path)


def test_siqa_with_labels_file(write, expect_error):
  row = {"context": "Tracy fed the cat.", "question": "Why?", "answerA": "hungry cat",
         "answerB": "bored", "answerC": "asleep"}
  data = write("dev.jsonl", [row, row])
  labels = write("dev-labels.lst", "1\n3\n")
  assert [e.label for e in read_siqa(data, labels).examples] == [0, 2]
  assert read_siqa(data).examples[0] == MultipleChoiceExample(
      "0", "Tracy fed the cat.", "Why?", ("hungry cat", "bored", "asleep"), None)
  short = write("short-labels.lst", "1\n")
  with expect_error(short, "fewer labels"):
    read_siqa(data, short)


def test_real_xcopa(shared_data):
  root = shared_data("xcopa")
  files = sorted(root.glob("data*/*/*.jsonl"))
  assert len(files) == 42
  for path in files:
    result = read_copa(path)
    assert len(result) == (100 if path.name.startswith("val") else 500), path
    assert [e.guid for e in result.examples] == [str(i) for i in range(len(result))]
    assert {e.label for e in result.examples} == {0, 1}
  first = read_copa(root / "data" / "et" / "val.et.jsonl").examples[0]
  assert first == MultipleChoiceExample("0", XCOPA["premise"], "effect",
                                        (XCOPA["choice1"], XCOPA["choice2"]), 1)
