"""One way to read a run (`runs.info.read_run`), and one start order (`runs.start`) for train and infer."""

import shutil

import pytest

from fixtures import MULTITASK_HEADS
from xtjax.runs.info import read_run
from xtjax.errors import CheckpointError, ConfigError
from xtjax.runs import start
from xtjax.runs.schema import ModelConfig, TaskConfig, TrainConfig


def test_read_run_is_typed(tiny_multitask_run):
  run = read_run(tiny_multitask_run["run"])
  assert isinstance(run.config, TrainConfig) and run.best_step == 7 and run.embedding_tasks == ()
  assert {k: (h.type, h.num_labels) for k, h in run.heads.items()} == MULTITASK_HEADS
  assert run.task_config("toy_cls").data.path.endswith("{split}.{lang}.jsonl")
  with pytest.raises(ConfigError, match=r"config.yaml: the run has no task 'nope'"):
    run.task_config("nope")


def test_an_unfinished_run_takes_its_encoder_from_the_start_order(tiny_multitask_run, tmp_path):
  finished = read_run(tiny_multitask_run["run"])
  copy = tmp_path / "run"
  shutil.copytree(tiny_multitask_run["run"], copy)
  shutil.rmtree(copy / "model")  # no exported encoder yet: model.pretrained decides
  unfinished = read_run(copy)
  assert unfinished.family.name == finished.family.name and unfinished.encoder_config == finished.encoder_config
  assert unfinished.tokenizer_dir is not None


def test_start_order():
  tasks = (TaskConfig("xnli"),)
  assert start.encoder_source(TrainConfig(ModelConfig(preset="xlmr-base"), tasks)).describe() == \
      "scratch (preset xlmr-base)"
  assert start.encoder_source(TrainConfig(ModelConfig(pretrained="x", preset="xlmr-base"), tasks)).kind == "pretrained"
  with pytest.raises(CheckpointError, match=r"init_from /nowhere: neither an xtjax model folder"):
    start.encoder_source(TrainConfig(ModelConfig(pretrained="x"), tasks, init_from="/nowhere"))


def test_init_from_beats_pretrained(tiny_multitask_run):
  cfg = TrainConfig(ModelConfig(pretrained="x"), (TaskConfig("xnli"),), init_from=str(tiny_multitask_run["run"]))
  src = start.encoder_source(cfg)
  assert src.kind == "init_from" and src.location == str(tiny_multitask_run["run"] / "model")
