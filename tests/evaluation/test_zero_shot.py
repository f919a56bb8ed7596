"""Zero-shot evaluation of a run directory: a library call that writes nothing into the run, on a
multi-task run, through programs compiled once per bucket."""

import hashlib
import json

import numpy as np

from xtjax.cli.main import main
from xtjax.evaluation.zero_shot import load_run_for_eval, zero_shot, zero_shot_eval
from xtjax.infer.engine import InferenceEngine
from xtjax.tasks import registry as task_registry


def _snapshot(folder):
  return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir",
                                       p.stat().st_mode)
          for p in sorted(folder.rglob("*"))}


def test_zero_shot_eval_of_a_multitask_run_leaves_it_byte_identical(tiny_multitask_run, tmp_path):
  run = tiny_multitask_run["run"]
  before = _snapshot(run)
  res = zero_shot_eval(run, "toy_cls", ["en", "de"], cache_dir=tmp_path / "cache")
  assert set(res) == {"toy_cls"} and set(res["toy_cls"]) == {"en", "de", "avg"}
  assert _snapshot(run) == before
  # The same numbers as the inference engine's predictions on that run.
  engine = InferenceEngine.from_run(run)
  task = task_registry.get("toy_cls")
  tcfg = engine.run.task_config("toy_cls")
  examples = task.read("test", "de", tcfg.data)
  scores = task.score(engine.predict_examples("toy_cls", examples), examples, "de")
  np.testing.assert_allclose(res["toy_cls"]["de"]["accuracy"], float(scores["accuracy"]), atol=1e-9)


def test_eval_command_on_a_multitask_run(tiny_multitask_run, tmp_path, capsys):
  run = tiny_multitask_run["run"]
  before = _snapshot(run)
  assert main(["eval", "--checkpoint", str(run), "--task", "toy_cls", "--languages", "es", "--json"]) == 0
  out = json.loads(capsys.readouterr().out)
  assert set(out["toy_cls"]) == {"es", "avg"} and 0.0 <= out["toy_cls"]["es"]["accuracy"] <= 100.0
  assert _snapshot(run) == before


def test_ragged_last_batches_do_not_recompile_per_language(tiny_multitask_run, tmp_path):
  # 12 examples per language at eval_batch_size 8: every language ends with a ragged batch of 4.
  model, cfg, params = load_run_for_eval(tiny_multitask_run["run"], "toy_cls", ["en", "de", "es"])
  first = zero_shot(model, cfg, params, tmp_path / "cache")
  stats = model.programs.stats
  assert stats.calls == 6 and stats.padded_rows == 3 * 4
  assert all(key[2] == cfg.eval_batch_size for key in stats.keys)  # one batch bucket: no ragged shapes
  assert stats.compilations == 1  # max_length 32: one length bucket, so one program for 3 languages
  n = stats.compilations
  second = zero_shot(model, cfg, params, tmp_path / "cache")
  assert stats.compilations == n and second == first
