"""Evaluation split over processes, checked in one process: each share's features are its examples'
rows of the whole split's features, and the predictions of the shares join into the whole split's
(`Task.join_predictions`); a missing prediction is an error. The two-process run itself is in
tests/train/test_multihost.py."""

import numpy as np
import pytest
from fixtures import make_unigram_tokenizer

from xtjax.data.formats import ClassificationExample, QAExample, TaggingExample
from xtjax.data.shards import ShardSpec
from xtjax.errors import XtjaxError
from xtjax.evaluation.shares import EvalShare
from xtjax.tasks import registry
from xtjax.tasks.base import FeatureSettings

# Small windows: most QA contexts need several, which must stay with their example.
SETTINGS = FeatureSettings(max_length=32, doc_stride=8, max_query_length=8)
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "near", "red", "barn"]


def _examples(kind: str, n: int, rng) -> list:
  out = []
  for i in range(n):
    words = [str(w) for w in rng.choice(WORDS, size=int(rng.integers(3, 18)))]
    text = " ".join(words)
    if kind == "qa":
      out.append(QAExample(f"q{i}", f"where {words[-1]} ?", text, ((words[-1], text.rindex(words[-1])),), False))
    elif kind == "tagging":
      out.append(TaggingExample(f"s{i}", tuple(words), tuple("B-LOC" if w == "barn" else "O" for w in words)))
    else:
      out.append(ClassificationExample(f"p{i}", text, " ".join(words[::-1]), "neutral"))
  return out


def _outputs(task, features, rng):
  shape = features.arrays["input_ids"].shape
  if task.head_type == "span":
    return rng.normal(size=shape).astype(np.float32), rng.normal(size=shape).astype(np.float32)
  if task.head_type == "tagging":
    return rng.normal(size=shape + (task.num_labels,)).astype(np.float32)
  return rng.normal(size=(shape[0], task.num_labels)).astype(np.float32)


@pytest.mark.parametrize("name,kind", [("xquad", "qa"), ("panx", "tagging"), ("xnli", "classification")])
def test_shares_predict_what_the_whole_split_predicts(name, kind):
  rng = np.random.default_rng(0)
  task, tok = registry.get(name), make_unigram_tokenizer()
  examples = _examples(kind, 23, rng)
  whole = task.featurize(examples, tok, SETTINGS)
  if kind == "qa":
    assert len(whole) > len(examples)  # several windows for some examples
  outputs = _outputs(task, whole, rng)
  expected = task.predict(outputs, whole, examples, SETTINGS)

  processes = 3
  parts, ids = [], []
  for p in range(processes):
    spec = ShardSpec(processes, p, processes)
    share = EvalShare(examples, task.featurize_examples(examples, spec.example_ids(len(examples)), tok, SETTINGS),
                      spec)
    mine = np.asarray(whole.example_index) % processes == p
    for k, v in whole.arrays.items():  # a share's rows are its examples' rows of the whole split, in order
      np.testing.assert_array_equal(share.features.arrays[k], v[mine], err_msg=k)
    local_examples, local_features = share.local()
    assert [e.guid for e in local_examples] == [examples[i].guid for i in share.example_ids]
    local_outputs = tuple(o[mine] for o in outputs) if isinstance(outputs, tuple) else outputs[mine]
    parts.append(task.predict(local_outputs, local_features, local_examples, SETTINGS))
    ids.append(share.example_ids)
  joined = task.join_predictions(parts[::-1], ids[::-1], examples)  # any order of the parts
  assert joined == expected
  if kind == "qa":
    assert list(joined.answers) == list(expected.answers)  # example order, as one process writes them


def test_a_missing_or_misaligned_prediction_is_an_error():
  cls, qa = registry.get("xnli"), registry.get("xquad")
  examples = _examples("classification", 4, np.random.default_rng(0))
  with pytest.raises(XtjaxError, match="no prediction for 1 of 4 examples"):
    cls.join_predictions([["a", "b"], ["c"]], [np.array([0, 2]), np.array([1])], examples)
  with pytest.raises(XtjaxError, match="part 1 has 1 predictions for 2 examples"):
    cls.join_predictions([["a", "b"], ["c"]], [np.array([0, 2]), np.array([1, 3])], examples)
  questions = _examples("qa", 3, np.random.default_rng(0))
  task, tok = qa, make_unigram_tokenizer()
  features = task.featurize(questions[:2], tok, SETTINGS)
  part = task.predict(_outputs(task, features, np.random.default_rng(1)), features, questions[:2], SETTINGS)
  with pytest.raises(XtjaxError, match="part 0 has no answer for question 'q2'"):
    task.join_predictions([part], [np.array([0, 1, 2])], questions)


def test_process_rows_assemble_rows_from_the_addressable_shards():
  import jax
  from jax.sharding import Mesh, NamedSharding, PartitionSpec

  from xtjax.parallel.batching import process_row_range, process_rows

  mesh = Mesh(np.array(jax.devices()[:8]).reshape(4, 2), ("data", "tensor"))
  x_np = np.arange(8 * 6, dtype=np.float32).reshape(8, 6)
  x = jax.device_put(x_np, NamedSharding(mesh, PartitionSpec("data", "tensor")))  # rows and columns split
  np.testing.assert_array_equal(process_rows(x, 3, 7), x_np[3:7])
  assert process_row_range(x.sharding, x.shape) == (0, 8)  # one process holds every row

