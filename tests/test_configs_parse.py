"""Every shipped config loads into its typed schema; bad keys and values are named."""

from pathlib import Path

import pytest

from xtjax import config as config_lib
from xtjax.errors import ConfigError
from xtjax.experiments.pipeline import PipelineConfig, phase_configs
from xtjax.experiments.sweep import SweepConfig, expand, load_sweep, unique_runs
from xtjax.runs.schema import TrainConfig

ALL = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))
# Files included by others with `base:` are fragments: named `_*.yaml` or under configs/models/.
CONFIGS = [p for p in ALL if not p.name.startswith("_") and p.parent.name != "models"]


def _kind(path: Path):
  data = config_lib.read_with_bases(path)
  return SweepConfig if "pipeline" in data else PipelineConfig if "targets" in data else TrainConfig


def shipped_phases(path: Path, tmp_path: Path) -> list[TrainConfig]:
  """Every TrainConfig a shipped train, pipeline or sweep config resolves to."""
  kind = _kind(path)
  if kind is SweepConfig:
    cfg, pipeline = load_sweep(path)
    return [r.config for r in unique_runs(expand(cfg, pipeline, tmp_path, str(path)))]
  cfg = config_lib.load(path, kind)
  return [c for _, c, _ in phase_configs(cfg, tmp_path, str(path))] if kind is PipelineConfig else [cfg]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_shipped_config_parses(path, tmp_path):
  from xtjax.tasks import registry

  phases = shipped_phases(path, tmp_path)
  assert phases
  for c in phases:
    for t in c.tasks:
      assert t.name in registry.names(), f"{path}: unknown task {t.name!r}"


def test_there_are_configs_and_every_fragment_is_used():
  assert len(CONFIGS) >= 15
  used = " ".join(p.read_text() for p in ALL)
  for frag in set(ALL) - set(CONFIGS):
    assert frag.name in used, f"{frag} is not included by any config"


def _write(tmp_path, text):
  p = tmp_path / "c.yaml"
  p.write_text(text)
  return p


def test_unknown_key_names_file_and_key(tmp_path):
  p = _write(tmp_path, "model: {pretrained: x}\ntasks: [{name: toy_cls}]\noptim: {learning_rat: 1e-5}\n")
  with pytest.raises(ConfigError, match=r"c\.yaml: optim\.learning_rat: unknown key; did you mean 'learning_rate'"):
    config_lib.load(p, TrainConfig)


def test_wrong_type_and_bad_yaml(tmp_path):
  p = _write(tmp_path, "model: {pretrained: x}\ntasks: [{name: toy_cls}]\nbatch_size: lots\n")
  with pytest.raises(ConfigError, match="batch_size: expected an integer, got 'lots'"):
    config_lib.load(p, TrainConfig)
  p = _write(tmp_path, "model: {pretrained: x\n")
  with pytest.raises(ConfigError, match=r"c\.yaml:\d+: invalid YAML"):
    config_lib.load(p, TrainConfig)
  p = _write(tmp_path, "tasks: [{name: toy_cls}]\n")
  with pytest.raises(ConfigError, match="model: required key is missing"):
    config_lib.load(p, TrainConfig)


def test_overrides_are_typed_and_checked(tmp_path):
  p = _write(tmp_path, "model: {pretrained: x}\ntasks: [{name: toy_cls}]\n")
  cfg = config_lib.load(p, TrainConfig, ["optim.learning_rate=2e-5", "mesh.fsdp=2", "features.max_length=256"])
  assert cfg.optim.learning_rate == 2e-5 and cfg.mesh.fsdp == 2 and cfg.features.max_length == 256
  with pytest.raises(ConfigError, match="optim.nope: unknown key"):
    config_lib.load(p, TrainConfig, ["optim.nope=1"])
  with pytest.raises(ConfigError, match="not of the form key=value"):
    config_lib.load(p, TrainConfig, ["optim.learning_rate"])
  with pytest.raises(ConfigError, match="batch_size 30 is not divisible"):
    config_lib.load(p, TrainConfig, ["batch_size=30", "optim.grad_accum_steps=4"])
