"""Deterministic, resumable batching and multi-task sampling."""

import numpy as np
import pytest

from xtjax.data.batching import DataPosition, MultiTaskStream, TaskStream, eval_batches, sampling_weights


def _stream(name, n, bs=4, seed=0):
  return TaskStream(name, {"x": np.arange(n) + (1000 if name == "b" else 0)}, bs, seed)


def test_sampling_rules_and_fixed_shares():
  sizes = {"a": 100, "b": 300}
  assert sampling_weights(sizes, "proportional") == pytest.approx({"a": 0.25, "b": 0.75})
  assert sampling_weights(sizes, "capped", cap=100) == pytest.approx({"a": 0.5, "b": 0.5})
  t = sampling_weights(sizes, "temperature", temperature=2.0)
  assert t["a"] == pytest.approx(10 / (10 + 300 ** 0.5))
  assert sampling_weights(sizes, "uniform") == pytest.approx({"a": 0.5, "b": 0.5})
  w = sampling_weights({"a": 100, "b": 300, "mlm": 10**6}, "proportional", overrides={"mlm": 0.1})
  assert w == pytest.approx({"a": 0.225, "b": 0.675, "mlm": 0.1})
  with pytest.raises(ValueError):
    sampling_weights(sizes, "proportional", overrides={"a": 1.5})


def test_epochs_cover_every_row_once_and_pad_the_last_batch():
  s = _stream("a", 10)
  rows = np.concatenate([s.batch(0, i)["x"][s.batch(0, i)["example_mask"] == 1] for i in range(s.batches_per_epoch)])
  assert sorted(rows.tolist()) == list(range(10))
  assert s.batch(0, 2)["example_mask"].tolist() == [1, 1, 0, 0]
  assert s.order(0).tolist() != s.order(1).tolist()  # reshuffled every epoch


def test_stream_resumes_exactly_and_processes_split_each_batch():
  streams = [_stream("a", 10), _stream("b", 30)]
  w = sampling_weights({"a": 10, "b": 30}, "proportional")
  full = list(zip(range(12), MultiTaskStream(streams, w, seed=3).iterate(DataPosition())))
  pos = full[4][1][2]
  resumed = list(zip(range(7), MultiTaskStream(streams, w, seed=3).iterate(pos)))
  for (_, (n1, b1, p1)), (_, (n2, b2, p2)) in zip(full[5:], resumed):
    assert n1 == n2 and p1 == p2 and np.array_equal(b1["x"], b2["x"])
  assert DataPosition.from_json(pos.to_json()) == pos
  halves = [MultiTaskStream(streams, w, seed=3, process_index=i, process_count=2) for i in range(2)]
  for (_, (name, batch, _)), h0, h1 in zip(full, halves[0].iterate(DataPosition()), halves[1].iterate(DataPosition())):
    assert h0[0] == h1[0] == name
    assert np.array_equal(np.concatenate([h0[1]["x"], h1[1]["x"]]), batch["x"])


def test_eval_batches_visit_every_feature_once_in_order():
  got = [(rows.tolist(), b["example_mask"].tolist()) for rows, b in eval_batches({"x": np.arange(5)}, 2)]
  assert got == [([0, 1], [1, 1]), ([2, 3], [1, 1]), ([4], [1, 0])]
