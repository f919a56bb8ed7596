"""The training loader: the stream's batches in step order, built and placed ahead in a background
thread, from any step; a checkpoint's data position is checked against the stream."""

import threading
import time

import numpy as np
import pytest

from xtjax.data.batching import MultiTaskStream, TaskStream, sampling_weights
from xtjax.data.loader import TrainLoader
from xtjax.errors import XtjaxError


def _stream():
  streams = [TaskStream.whole("a", {"x": np.arange(10)}, 4, 0),
             TaskStream.whole("b", {"x": np.arange(30) + 1000}, 4, 0)]
  return MultiTaskStream(streams, sampling_weights({"a": 10, "b": 30}, "proportional"), seed=3)


def test_loader_yields_the_stream_from_any_step_built_ahead_in_another_thread():
  placed = []  # the thread that put each batch on "the device"

  def put(batch):
    placed.append(threading.current_thread().name)
    return {k: v * 1 for k, v in batch.items()}

  stream = _stream()
  loader = TrainLoader(stream, put, prefetch=2)
  got = list(loader.iterate(3, 12))
  assert [name for name, _, _ in got] == [stream.at(s)[0] for s in range(3, 12)]
  for step, (_, batch, pos) in zip(range(3, 12), got):
    assert batch["x"].tolist() == stream.at(step)[1]["x"].tolist()
    assert pos == stream.position(step + 1)
  assert placed and all(t != threading.main_thread().name for t in placed)

  # While the step runs (here: a sleep), the next batches are built and placed: `prefetch` queued,
  # one more held by the thread until there is room. No further.
  placed.clear()
  it = loader.iterate(0, 12)
  next(it)
  deadline = time.monotonic() + 20
  while len(placed) < 1 + 2 + 1 and time.monotonic() < deadline:
    time.sleep(0.01)
  time.sleep(0.3)
  assert len(placed) == 1 + 2 + 1
  it.close()  # stops the thread: nothing more is built
  time.sleep(0.3)
  assert len(placed) == 4


def test_resume_accepts_this_streams_position_and_refuses_another():
  loader = TrainLoader(_stream(), dict)
  saved = loader.position(7).to_json()
  assert loader.resume(saved) == loader.position(7)
  saved["tasks"]["a"] = [5, 0]
  with pytest.raises(XtjaxError, match="data position .* is not this run's stream at step 7"):
    loader.resume(saved)
