import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@pytest.fixture(scope="session")
def toy_env(tmp_path_factory, tiny_hf):
  """A tiny XLM-R checkpoint and the toy task's data, shared by the engine tests."""
  from xtjax.tasks.synthetic import write_toy_data

  root = tmp_path_factory.mktemp("toy")
  data = write_toy_data(root / "data", n_train=144, n_eval=32)
  return {"hf": tiny_hf("xlm-roberta"), "data": data, "root": root}


def toy_config(env, **kw):
  from xtjax import config as config_lib
  from xtjax.runs.schema import TrainConfig

  d = {
      "model": {"pretrained": str(env["hf"]), "config_overrides": {"dropout_rate": 0.1}},
      "tasks": [{"name": "toy_cls", "data": {"path": str(env["data"] / "{split}.{lang}.jsonl")},
                 "eval_languages": ["en", "de"]}],
      "batch_size": 16, "eval_batch_size": 16, "epochs": 1, "log_every": 1,
      "optim": {"learning_rate": 3e-3, "warmup_ratio": 0.1},
      "features": {"max_length": 24},
      "checkpoint": {"every_steps": 4, "keep": 3, "async_save": False},
      "cache_dir": str(env["root"] / "cache"),
  }
  for k, v in kw.items():
    node = d
    parts = k.split("__")
    for p in parts[:-1]:
      node = node.setdefault(p, {})
    node[parts[-1]] = v
  return config_lib.from_dict(TrainConfig, d, "test")
