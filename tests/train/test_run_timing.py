"""Run timing a person can trust: the step bar's rate and ETA start after the first (compiling) step, an
evaluation-only phase shows no bar of 0 steps, and summary.json keeps the compilation apart from training."""

import logging

import pytest
from conftest import toy_config

from xtjax.train import loop


def test_step_bar_eta_leaves_out_the_compiling_first_step(monkeypatch):
  clock = [100.0]
  monkeypatch.setattr("tqdm.std.time", lambda: clock[0])  # tqdm's clock, faked: no wall-clock assertions
  bar = loop._progress(total=11, initial=0)
  clock[0] += 30.0  # the first step compiles for 30 s
  bar.compiled()
  bar.update(1, 0.5)
  for step in range(2, 6):  # then 1 s a step
    clock[0] += 1.0
    bar.update(step, 0.5)
  fmt = bar.bar.format_dict
  assert fmt["elapsed"] == pytest.approx(4.0)  # not 34: the rate, hence the ETA, is the steps' own
  bar.close()


def test_an_evaluation_only_phase_shows_no_zero_step_bar(caplog):
  with caplog.at_level(logging.INFO, logger="xtjax.train.loop"):
    bar = loop._progress(total=0, initial=0)
  assert bar.bar is None and "evaluation only: no training steps" in caplog.text
  bar.update(0, 0.0)
  bar.compiled()
  bar.close()


def test_summary_keeps_compilation_apart_from_training(toy_env, tmp_path):
  summary = loop.train(toy_config(toy_env, steps=3, zero_shot=False, eval_every=100,
                                  mesh={"data": 1, "devices": 1}), tmp_path / "run")
  assert 0 < summary["compile_seconds"] < summary["train_seconds"]
