"""Every hook the rest of xtjax calls is declared on `Task` with a default; nobody probes with hasattr."""

import ast
import pickle
from pathlib import Path

import numpy as np
import pytest

from tasks_support import unigram, write
from xtjax.data.cache import cached_features, entry_dir, feature_key
from xtjax.data.sources import DataSource
from xtjax.errors import XtjaxError
from xtjax.tasks.base import FeatureSettings, Features, Task

PACKAGE = Path(__file__).resolve().parents[2] / "xtjax"


class LineTask(Task):
  """The smallest task: one example per line, label = line length parity; only the 4 abstract methods."""

  name = "lines"
  head_type = "classification"

  def read(self, split, language, source):
    return self.source_files(split, language, source)[0].read_text().splitlines()

  def featurize(self, examples, tokenizer, settings):
    enc = tokenizer(list(examples), truncation=True, max_length=settings.max_length, padding="max_length")
    arrays = {k: np.asarray(enc[k], np.int32) for k in ("input_ids", "attention_mask")}
    arrays["labels"] = np.array([len(e) % 2 for e in examples], np.int32)
    return Features(arrays, np.arange(len(examples)), stats={"truncated": 0})

  def predict(self, outputs, features, examples, settings):
    return np.asarray(outputs).argmax(-1)

  def score(self, predictions, examples, language):
    return {"accuracy": 100.0}


def test_defaults_of_every_hook(tmp_path):
  task = LineTask()
  assert task.fingerprint() == {"task": "lines", "class": "LineTask"}
  path = write(tmp_path, "dev.de.txt", "ab\n")
  assert task.source_files("dev", "de", DataSource(path=str(tmp_path / "{split}.{lang}.txt"))) == [path]
  assert task.source_files("dev", "de", DataSource(kind="hf", hf_id="x/y")) == []
  assert task.export_state() == {}
  task.restore_state({})
  with pytest.raises(XtjaxError, match="task 'lines' keeps no state but was given \\['labels'\\]"):
    task.restore_state({"labels": ["a"]})
  features = task.featurize(["ab", "c"], unigram(), FeatureSettings(max_length=8))
  assert task.stats(["ab", "c"], features) == {"examples": 2, "features": 2, "truncated": 0, "truncation_rate": 0.0}
  assert task.submission_text([np.int64(1), 0], ["ab", "c"]) == ("jsonl", "1\n0\n")


def test_cache_uses_the_declared_hooks(tmp_path):
  path = write(tmp_path, "dev.de.txt", "ab\nc\n")
  task, tok, settings = LineTask(), unigram(), FeatureSettings(max_length=8)
  source = DataSource(path=str(tmp_path / "{split}.{lang}.txt"))
  key, description = feature_key(task, "dev", "de", source, tok, settings)
  assert description["task"] == task.fingerprint()
  assert description["files"] == [[str(path.resolve()), path.stat().st_size, path.stat().st_mtime_ns]]
  examples, features = cached_features(task, "dev", "de", source, tok, settings, tmp_path / "cache")
  assert examples == ["ab", "c"] and len(features) == 2
  # An entry that carries state for a task that keeps none is an error naming the entry.
  folder = entry_dir(tmp_path / "cache", task.name, "dev", "de", key)
  entry = pickle.loads((folder / "entry.pkl").read_bytes())
  (folder / "entry.pkl").write_bytes(pickle.dumps({**entry, "state": {"labels": ["x"]}}))
  with pytest.raises(XtjaxError, match=f"{folder}: task 'lines' keeps no state"):
    cached_features(task, "dev", "de", source, tok, settings, tmp_path / "cache")


def test_no_module_probes_a_task_with_hasattr():
  probes = []
  for path in sorted(PACKAGE.rglob("*.py")):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("hasattr", "getattr")
          and node.args and isinstance(node.args[0], ast.Name) and node.args[0].id == "task"):
        probes.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
  assert not probes, f"tasks probed with hasattr/getattr (declare the hook on Task): {probes}"


class CountingLineTask(LineTask):
  def __init__(self):
    self.calls = []

  def featurize(self, examples, tokenizer, settings):
    self.calls.append(len(examples))
    return super().featurize(examples, tokenizer, settings)


def test_a_process_featurises_and_caches_only_its_shards(tmp_path):
  """Round-robin shards of 4 over 2 processes: each featurises its examples once, in its own cache
  entry, with the whole split's rows and example ids that count examples of the whole split."""
  from xtjax.data.cache import cached_shard
  from xtjax.data.shards import ShardSpec

  write(tmp_path, "train.de.txt", "".join(f"{'x' * (i % 5 + 1)}\n" for i in range(10)))
  task, tok, settings = CountingLineTask(), unigram(), FeatureSettings(max_length=8)
  source = DataSource(path=str(tmp_path / "{split}.{lang}.txt"))
  whole = LineTask().featurize(task.read("train", "de", source), tok, settings)
  shards = [cached_shard(task, "train", "de", source, tok, settings, tmp_path / "cache", ShardSpec(4, p, 2))
            for p in range(2)]
  assert task.calls == [6, 4]  # examples 0 1 4 5 8 9 and 2 3 6 7: never the whole split
  assert shards[0].example_ids.tolist() == [0, 1, 4, 5, 8, 9] and shards[1].example_ids.tolist() == [2, 3, 6, 7]
  for s in shards:
    assert s.num_examples == 10
    np.testing.assert_array_equal(s.features.arrays["input_ids"], whole.arrays["input_ids"][s.example_ids])
  names = sorted(p.name.split(".")[2] for p in (tmp_path / "cache" / "lines").iterdir())
  assert names == ["shards0-1of4", "shards2-3of4"]
  again = cached_shard(task, "train", "de", source, tok, settings, tmp_path / "cache", ShardSpec(4, 1, 2))
  assert task.calls == [6, 4] and again.example_ids.tolist() == [2, 3, 6, 7]  # a cache hit: nothing featurised
