"""Deterministic, resumable batching and multi-task sampling."""

import numpy as np
import pytest

from xtjax.data.batching import DataPosition, MultiTaskStream, TaskStream, eval_batches, sampling_weights
from xtjax.data.shards import ShardSpec
from xtjax.errors import DataError, XtjaxError


def _stream(name, n, bs=4, seed=0):
  return TaskStream.whole(name, {"x": np.arange(n) + (1000 if name == "b" else 0)}, bs, seed)


def _process_streams(name, n, bs, process_count, seed=0, windows=None):
  """Each process's stream over only its shards' rows, as `task_streams` builds them after the all-gather.
  `windows[e]`: features of example e (QA-like), rows valued 100 * e + window."""
  windows = np.ones(n, np.int64) if windows is None else np.asarray(windows)
  example_of_row = np.repeat(np.arange(n), windows)
  value = 100 * example_of_row + np.concatenate([np.arange(w) for w in windows])
  sizes = np.bincount(example_of_row % bs, minlength=bs)
  out = []
  for p in range(process_count):
    spec = ShardSpec(bs, p, process_count)
    mine = np.isin(example_of_row, spec.example_ids(n))
    out.append(TaskStream(name, {"x": value[mine]}, example_of_row[mine], sizes, bs, seed, spec))
  return out


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
  # 4 round-robin shards of 3, 3, 2 and 2 examples: the last batch pads the two spent shards.
  assert s.batches_per_epoch == 3 and s.batch(0, 2)["example_mask"].tolist() == [1, 1, 0, 0]
  assert [x % 4 for x in s.batch(0, 0)["x"].tolist()] == [0, 1, 2, 3]  # one row from each shard
  assert s.batch(0, 0)["x"].tolist() != s.batch(1, 0)["x"].tolist()  # reshuffled every epoch


def test_stream_resumes_exactly_and_any_step_is_random_access():
  streams = [_stream("a", 10), _stream("b", 30)]
  w = sampling_weights({"a": 10, "b": 30}, "proportional")
  full = list(zip(range(12), MultiTaskStream(streams, w, seed=3).iterate(DataPosition())))
  assert {name for _, (name, _, _) in full} == {"a", "b"}
  pos = full[4][1][2]
  resumed = list(zip(range(7), MultiTaskStream(streams, w, seed=3).iterate(pos)))
  for (_, (n1, b1, p1)), (_, (n2, b2, p2)) in zip(full[5:], resumed):
    assert n1 == n2 and p1 == p2 and np.array_equal(b1["x"], b2["x"])
  assert DataPosition.from_json(pos.to_json()) == pos
  # The position counts each task's batches: the epochs and indices a sequential walk reaches.
  drawn = [name for _, (name, _, _) in full]
  assert full[-1][1][2].tasks == {n: divmod(drawn.count(n), streams[i].batches_per_epoch)
                                  for i, n in enumerate(("a", "b"))}
  late = MultiTaskStream(streams, w, seed=3)
  assert late.at(11)[1]["x"].tolist() == full[11][1][1]["x"].tolist()  # straight to step 11


@pytest.mark.parametrize("windows", [None, [1, 2, 1, 3, 1, 1, 2, 1, 1, 1, 4, 1, 1]])
def test_processes_hold_only_their_shards_and_together_build_the_one_process_batches(windows):
  """Two processes, each with only its examples' rows (QA-like: several windows per example), build
  the halves of the batches one process builds, and agree on the steps per epoch."""
  n, bs = 13, 4
  one = _process_streams("a", n, bs, 1, windows=windows)[0]
  halves = _process_streams("a", n, bs, 2, windows=windows)
  assert halves[0].batches_per_epoch == halves[1].batches_per_epoch == one.batches_per_epoch
  assert sorted(np.concatenate([h.arrays["x"] for h in halves]).tolist()) == sorted(one.arrays["x"].tolist())
  for h, shards in zip(halves, ((0, 1), (2, 3))):
    assert set((h.arrays["x"] // 100) % bs) == set(shards)  # only the examples of its own shards
  for epoch in range(2):
    seen = []
    for i in range(one.batches_per_epoch):
      whole = one.batch(epoch, i)
      parts = [h.batch(epoch, i) for h in halves]
      mask = np.concatenate([p["example_mask"] for p in parts])
      assert mask.tolist() == whole["example_mask"].tolist()
      x = np.concatenate([p["x"] for p in parts])
      assert x[mask == 1].tolist() == whole["x"][whole["example_mask"] == 1].tolist()
      seen += x[mask == 1].tolist()
    assert sorted(seen) == sorted(one.arrays["x"].tolist())  # every feature once per epoch


def test_a_shard_layout_that_leaves_a_process_without_examples_is_refused():
  ShardSpec(8, 1, 2).check_every_process_has_examples("a", 5)
  with pytest.raises(DataError, match="leave process 1 of 2 without examples"):
    ShardSpec(8, 0, 2).check_every_process_has_examples("a", 4)
  with pytest.raises(XtjaxError, match="cannot be split over 3 processes"):
    ShardSpec(8, 0, 3)


def test_eval_batches_visit_every_feature_once_in_order():
  got = [(rows.tolist(), b["example_mask"].tolist()) for rows, b in eval_batches({"x": np.arange(5)}, 2)]
  assert got == [([0, 1], [1, 1]), ([2, 3], [1, 1]), ([4], [1, 0])]
