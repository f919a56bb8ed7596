"""A sweep says where it is: `run i/N: <phase> <axis values> (elapsed, ETA)`, the ETA from the finished runs'
seconds per unit of work of the same phase (1 vs 10 epochs are not one run each)."""

import logging
from pathlib import Path

import pytest

from xtjax.experiments import sweep
from xtjax.experiments.sweep_progress import SweepProgress

ROOT = Path(__file__).resolve().parents[2]


def _sweep(tmp_path):
  (tmp_path / "pipeline.yaml").write_text((ROOT / "configs/tiny/pipeline.yaml").read_text())
  (tmp_path / "sweep.yaml").write_text(
      "name: t\npipeline: pipeline.yaml\nintermediate: [none, intermediate-mnli]\ntargets: [target-xnli]\n"
      "latency: false\naxes:\n  intermediate.train.epochs: [1, 10]\n  defaults.seed: [0, 1]\n")
  return sweep.load_sweep(tmp_path / "sweep.yaml")


def test_sweep_logs_run_i_of_n_with_axis_values(tmp_path, caplog):
  cfg, pipeline = _sweep(tmp_path)

  def fake(cfg, run_dir):
    (Path(run_dir) / "summary.json").write_text('{"status": "finished", "step": 1, "zero_shot": {}}')
    return {"status": "finished"}

  with caplog.at_level(logging.INFO, logger="xtjax.experiments.sweep_progress"):
    sweep.run_sweep(cfg, pipeline, tmp_path / "sw", train_fn=fake)
  lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("run ")]
  # 4 intermediate runs (epochs x seed), 6 target runs (2 baseline + 4 after an intermediate run).
  assert len(lines) == 10 and lines[0].startswith("run 1/10: intermediate-mnli epochs=1 seed=0 (elapsed 0:00:")
  assert lines[0].endswith("ETA after the first run)") and "ETA 0:" in lines[1]
  assert "run 10/10: target-xnli epochs=10 seed=1 (" in lines[-1]
  assert any(x.startswith("run 5/10: target-xnli seed=0 (") for x in lines)  # the baseline: no epochs axis
  caplog.clear()
  with caplog.at_level(logging.INFO, logger="xtjax.experiments.sweep_progress"):
    sweep.run_sweep(cfg, pipeline, tmp_path / "sw", train_fn=fake)
  assert not [r for r in caplog.records if r.getMessage().startswith("run ")]  # nothing left to train


def test_eta_scales_with_each_phase_work():
  from types import SimpleNamespace as NS

  def run(label, epochs, name):
    return NS(label=label, run_dir=Path(name), config=NS(steps=None, epochs=epochs))

  todo = [run("inter", 1, "a"), run("inter", 10, "b"), run("target", 3, "c"), run("target", 3, "d")]
  clock = [0.0]
  p = SweepProgress(todo, cells=[], clock=lambda: clock[0])
  assert p.start(todo[0]).endswith("(elapsed 0:00:00, ETA after the first run)")
  clock[0] += 60.0  # 1 epoch of the intermediate phase: 60 s
  p.finish()
  # 10 epochs at 60 s each, then two target runs at the only rate known (60 s per epoch, 3 epochs).
  assert p.eta(todo[1:]) == pytest.approx(600 + 2 * 180)
  assert p.start(todo[1]).endswith("(elapsed 0:01:00, ETA 0:16:00)")
  clock[0] += 600.0
  p.finish()
  p.start(todo[2])
  clock[0] += 30.0  # the target phase is faster: 10 s per epoch
  p.finish()
  assert p.eta(todo[3:]) == pytest.approx(30.0)
