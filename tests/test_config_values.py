"""Bad numeric values are refused when the config is loaded, naming the file and key."""

import pytest

from xtjax import config as config_lib
from xtjax.errors import ConfigError
from xtjax.runs.schema import TrainConfig

BASE = "model: {preset: xlmr-base}\ntasks: [{name: toy_cls}]\n"


@pytest.mark.parametrize("override, key", [
    ("batch_size=0", "batch_size"), ("batch_size=-16", "batch_size"), ("epochs=0", "epochs"),
    ("eval_batch_size=0", "eval_batch_size"), ("steps=0", "steps"), ("log_every=0", "log_every"),
    ("eval_every=-1", "eval_every"), ("sampling_cap=0", "sampling_cap"),
    ("optim.grad_accum_steps=0", "optim.grad_accum_steps"), ("optim.learning_rate=-1", "optim.learning_rate"),
    ("optim.warmup_ratio=1.5", "optim.warmup_ratio"), ("checkpoint.every_steps=0", "checkpoint.every_steps"),
    ("checkpoint.keep=0", "checkpoint.keep"), ("features.max_length=0", "features.max_length"),
    ("features.doc_stride=-1", "features.doc_stride")])
def test_bad_values_name_file_and_key(tmp_path, override, key):
  path = tmp_path / "run.yaml"
  path.write_text(BASE)
  with pytest.raises(ConfigError) as e:
    config_lib.load(path, TrainConfig, [override])
  msg = str(e.value)
  assert msg.startswith(f"{path} (with overrides): {key}: must be"), msg
  assert "\n" not in msg


def test_edge_values_accepted(tmp_path):
  path = tmp_path / "run.yaml"
  path.write_text(BASE)
  cfg = config_lib.load(path, TrainConfig, ["batch_size=1", "epochs=0.5", "eval_every=0", "steps=1",
                                            "optim.max_grad_norm=0", "optim.warmup_ratio=0"])
  assert cfg.batch_size == 1 and cfg.steps == 1


def test_bad_value_from_yaml_file(tmp_path):
  path = tmp_path / "run.yaml"
  path.write_text(BASE + "batch_size: 0\n")
  with pytest.raises(ConfigError, match=rf"^{path}: batch_size: must be >= 1, got 0$"):
    config_lib.load(path, TrainConfig)
