"""Multiple-choice tasks: [N, C, L] features, segment layout per dataset, hub rows, real XCOPA and Cosmos QA."""

import numpy as np
import pytest

from tasks_support import SHARED_DATA, unigram, wordpiece, write
from xtjax.data.sources import DataSource
from xtjax.errors import DataError
from xtjax.tasks import registry
from xtjax.tasks.base import FeatureSettings

SETTINGS = FeatureSettings(max_length=32)


def _decode_pair(tok, ids):
  """The two segments of a WordPiece [CLS] a [SEP] b [SEP] row, as text."""
  tokens = tok.convert_ids_to_tokens([int(i) for i in ids if i != tok.pad_token_id])
  sep = tokens.index("[SEP]")
  join = lambda ts: tok.convert_tokens_to_string(ts)  # noqa: E731
  return join(tokens[1:sep]), join(tokens[sep + 1:-1])


def test_hellaswag_segments_shapes_and_scores(tmp_path):
  rows = [{"ind": 7, "ctx_a": "the dog", "ctx_b": "the fox", "endings": ["jumps", "runs", "sleeps", "hello"],
           "label": 2},
          {"ind": 8, "ctx_a": "a cat", "ctx_b": "", "endings": ["a", "b", "c", "d"], "label": 0}]
  path = write(tmp_path, "hellaswag_val.jsonl", rows)
  task = registry.get("hellaswag")
  examples = task.read("dev", "en", DataSource(path=str(path)))
  features = task.featurize(examples, wordpiece(), SETTINGS)
  assert features.arrays["input_ids"].shape == (2, 4, 32) and features.arrays["attention_mask"].shape == (2, 4, 32)
  assert features.arrays["labels"].tolist() == [2, 0]
  assert _decode_pair(wordpiece(), features.arrays["input_ids"][0, 2]) == ("the dog", "the fox sleeps")
  assert _decode_pair(wordpiece(), features.arrays["input_ids"][1, 3]) == ("a cat", "d")
  logits = np.array([[0, 0, 5, 0], [0, 3, 0, 0]], np.float32)
  predictions = task.predict(logits, features, examples, SETTINGS)
  assert predictions == [2, 1]
  assert task.score(predictions, examples, "en") == {"accuracy": 50.0}
  assert task.submission_text(predictions, examples) == ("tsv", "2\n1\n")


def test_commonsenseqa_cosmosqa_copa_and_siqa_layouts(tmp_path):
  csqa = write(tmp_path, "dev_rand_split.jsonl", [{
      "id": "q1", "answerKey": "C", "question": {"stem": "the quick", "choices": [
          {"label": k, "text": t} for k, t in zip("ABCDE", ["fox", "dog", "cat", "bird", "world"])]}}])
  task = registry.get("commonsenseqa")
  features = task.featurize(task.read("dev", "en", DataSource(path=str(csqa))), wordpiece(), SETTINGS)
  assert features.arrays["input_ids"].shape == (1, 5, 32) and features.arrays["labels"].tolist() == [2]
  assert _decode_pair(wordpiece(), features.arrays["input_ids"][0, 2]) == ("the quick", "cat")

  cosmos = write(tmp_path, "valid.csv", "id,context,question,answer0,answer1,answer2,answer3,label\n"
                 'c1,"the dog, the fox",what,a,b,c,d,3\n')
  task = registry.get("cosmosqa")
  features = task.featurize(task.read("dev", "en", DataSource(path=str(cosmos))), wordpiece(), SETTINGS)
  assert _decode_pair(wordpiece(), features.arrays["input_ids"][0, 3]) == ("the dog, the fox what", "d")

  copa = write(tmp_path, "val.en.jsonl", [{"premise": "the dog", "choice1": "a fox", "choice2": "a cat",
                                           "question": "cause", "label": 1, "idx": 1}])
  task = registry.get("copa")
  features = task.featurize(task.read("dev", "en", DataSource(path=str(copa))), wordpiece(), SETTINGS)
  # XTREME-R's prompt; "?" is not in the tiny vocabulary.
  assert _decode_pair(wordpiece(), features.arrays["input_ids"][0, 1]) == ("the dog what was the cause [UNK]", "a cat")

  siqa = write(tmp_path, "dev.jsonl", [{"context": "the dog", "question": "why", "answerA": "a", "answerB": "b",
                                        "answerC": "c"}])
  write(tmp_path, "dev-labels.lst", "3\n")
  task = registry.get("siqa")
  examples = task.read("dev", "en", DataSource(path=str(siqa)))
  assert examples[0].label == 2 and len(task.source_files("dev", "en", DataSource(path=str(siqa)))) == 2
  features = task.featurize(examples, wordpiece(), SETTINGS)
  assert features.arrays["input_ids"].shape == (1, 3, 32)


def test_wrong_number_of_choices_and_malformed_lines(tmp_path):
  path = write(tmp_path, "val.jsonl", [{"premise": "p", "choice1": "a", "choice2": "b", "question": "why",
                                        "label": 0, "idx": 0}])
  with pytest.raises(DataError, match=r"val\.jsonl:1 \[question\]"):
    registry.get("xcopa").read("dev", "et", DataSource(path=str(path)))
  task = registry.get("hellaswag")
  from xtjax.data.formats import MultipleChoiceExample

  with pytest.raises(DataError, match="example 'x' has 3 choices, expected 4"):
    task.featurize([MultipleChoiceExample("x", "c", "q", ("a", "b", "c"), 0)], wordpiece(), SETTINGS)


def test_hub_rows_via_json_builder(tmp_path):
  write(tmp_path, "validation.jsonl", [
      {"ind": 1, "ctx_a": "a", "ctx_b": "b", "endings": ["w", "x", "y", "z"], "label": "3"},
      {"ind": 2, "ctx_a": "a", "ctx_b": "b", "endings": ["w", "x", "y", "z"], "label": ""}])
  source = DataSource(kind="hf", hf_id="json", path=str(tmp_path / "{split}.jsonl"), split_names={"dev": "validation"})
  examples = registry.get("hellaswag").read("dev", "en", source)
  assert [(e.guid, e.label) for e in examples] == [("1", 3), ("2", None)]
  write(tmp_path / "s", "validation.jsonl", [{"context": "c", "question": "q", "answerA": "a", "answerB": "b",
                                              "answerC": "c", "label": "1"}])
  source = DataSource(kind="hf", hf_id="json", path=str(tmp_path / "s" / "{split}.jsonl"),
                      split_names={"dev": "validation"})
  assert registry.get("siqa").read("dev", "en", source)[0].label == 0
  write(tmp_path / "c", "validation.jsonl", [{"id": "q", "question": "s", "answerKey": "B",
                                              "choices": {"label": list("ABCDE"), "text": list("vwxyz")}}])
  source = DataSource(kind="hf", hf_id="json", path=str(tmp_path / "c" / "{split}.jsonl"),
                      split_names={"dev": "validation"})
  example = registry.get("commonsenseqa").read("dev", "en", source)[0]
  assert example.choices == tuple("vwxyz") and example.label == 1


XCOPA = SHARED_DATA / "xcopa" / "data"


@pytest.mark.skipif(not XCOPA.is_dir(), reason="shared XCOPA data absent")
def test_real_xcopa_val_and_test():
  task = registry.get("xcopa")
  source = DataSource(path=str(XCOPA / "{lang}" / "{split}.{lang}.jsonl"), split_names={"dev": "val"})
  for lang, split, n in (("et", "dev", 100), ("zh", "test", 500)):
    examples = task.read(split, lang, source)
    assert len(examples) == n
    features = task.featurize(examples, unigram(), FeatureSettings(max_length=64))
    assert features.arrays["input_ids"].shape == (n, 2, 64)
    gold = features.arrays["labels"]
    assert set(gold.tolist()) == {0, 1}
    assert task.score(task.predict(np.eye(2)[gold], features, examples, None), examples, lang) == {"accuracy": 100.0}
    always_first = task.score([0] * n, examples, lang)["accuracy"]
    assert always_first == pytest.approx(100.0 * (gold == 0).mean())


COSMOS = SHARED_DATA / "cosmosqa" / "valid.csv"


@pytest.mark.skipif(not COSMOS.is_file(), reason="shared Cosmos QA data absent")
def test_real_cosmosqa_dev():
  task = registry.get("cosmosqa")
  examples = task.read("dev", "en", DataSource(path=str(COSMOS)))
  assert len(examples) == 2985
  subset = examples[:300]
  features = task.featurize(subset, unigram(), FeatureSettings(max_length=64))
  assert features.arrays["input_ids"].shape == (300, 4, 64)
  # Cosmos QA contexts are long: the tiny tokenizer splits them into many pieces.
  assert 0 < features.stats["truncated"] <= 300
  gold = features.arrays["labels"]
  assert task.score(task.predict(np.eye(4)[gold], features, subset, None), subset, "en") == {"accuracy": 100.0}
  stats = task.stats(subset, features)
  assert sum(stats["label_distribution"].values()) == 300


def test_hub_row_schemas_cosmos_qa_and_xcopa():
  from xtjax.tasks.multiple_choice import copa_row, cosmosqa_row

  row = {"id": "c", "context": "ctx", "question": "q", "answer0": "a", "answer1": "b", "answer2": "c",
         "answer3": "d", "label": 3}
  assert cosmosqa_row(row, 0, "cosmos_qa").label == 3
  xcopa = copa_row({"premise": "p", "choice1": "a", "choice2": "b", "question": "effect", "label": 1, "idx": 4,
                    "changed": False}, 0, "xcopa")
  assert (xcopa.guid, xcopa.choices, xcopa.label) == ("4", ("a", "b"), 1)
  with pytest.raises(DataError, match=r"cosmos_qa row 1 \[label\]: 5 is not one of 4 choices"):
    cosmosqa_row(dict(row, label=5), 1, "cosmos_qa")
