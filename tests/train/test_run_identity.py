"""A run directory belongs to one resolved config: a changed config is an error naming the keys (nothing
written first), `--overwrite` starts afresh, placement keys (mesh, cache) are not changes."""

import pytest
import yaml

from conftest import toy_config
from xtjax.cli.main import main
from xtjax.errors import ConfigError
from xtjax.experiments.pipeline import PhaseConfig, PipelineConfig, run_pipeline
from xtjax.runs import identity
from xtjax.train.loop import Trainer


def test_differing_keys_and_hash():
  old = {"a": 1, "b": {"c": 2, "d": [1, 2]}, "tasks": [{"name": "x", "w": 1}]}
  new = {"a": 1, "b": {"c": 3, "d": [1, 2]}, "tasks": [{"name": "x", "w": 2}], "e": 0}
  assert identity.differing_keys(old, new) == ["b.c", "e", "tasks[0].w"]
  assert identity.differing_keys(old, old) == []
  assert identity.config_hash(old) != identity.config_hash(new)
  assert identity.config_hash(old) == identity.config_hash({**old, "mesh": {"data": 8}})


def _write_run(folder, cfg):
  folder.mkdir(parents=True)
  (folder / "config.yaml").write_text(yaml.safe_dump(identity.resolved(cfg)))


def test_a_foreign_run_directory_is_refused_before_anything_is_written(toy_env, tmp_path):
  run = tmp_path / "run"
  _write_run(run, toy_config(toy_env, seed=3, optim={"learning_rate": 1e-4}))
  before = (run / "config.yaml").read_bytes()
  with pytest.raises(ConfigError, match=r"config.yaml: .*keys differ: optim.learning_rate, seed\); pass --overwrite"):
    Trainer(toy_config(toy_env), run)
  assert (run / "config.yaml").read_bytes() == before and sorted(p.name for p in run.iterdir()) == ["config.yaml"]


def test_placement_keys_are_not_changes_and_overwrite_starts_afresh(toy_env, tmp_path):
  run = tmp_path / "run"
  _write_run(run, toy_config(toy_env, seed=3))
  (run / "stale.txt").write_text("old run")
  t = Trainer(toy_config(toy_env, seed=3, mesh={"data": 2, "devices": 2}, cache_dir=str(tmp_path / "c2")), run)
  assert (run / "stale.txt").exists() and t.config_dict["mesh"]["data"] == 2
  Trainer(toy_config(toy_env, seed=4), run, overwrite=True)
  assert not (run / "stale.txt").exists()
  assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == 4


def test_every_run_writes_its_fully_resolved_config(toy_env, tmp_path):
  Trainer(toy_config(toy_env), tmp_path / "run")
  written = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
  assert written["optim"]["b2"] == 0.999 and written["features"]["max_length"] == 24  # defaults filled in
  assert written == identity.resolved(toy_config(toy_env))


def test_print_config(tmp_path, capsys):
  cfg = tmp_path / "c.yaml"
  cfg.write_text(yaml.safe_dump({"model": {"preset": "xlmr-base"}, "tasks": [{"name": "xnli"}]}))
  assert main(["train", str(cfg), "--print-config", "seed=5", "--workdir", str(tmp_path / "w")]) == 0
  printed = yaml.safe_load(capsys.readouterr().out)
  assert printed["seed"] == 5 and printed["optim"]["learning_rate"] == 1e-5
  assert printed["tasks"][0]["eval_split"] == "test"  # defaults filled in
  assert not (tmp_path / "w").exists()


def _pipeline(toy_env, epochs):
  task = {"name": "toy_cls", "data": {"path": str(toy_env["data"] / "{split}.{lang}.jsonl")}}
  defaults = {"model": {"pretrained": str(toy_env["hf"])}, "tasks": [task], "batch_size": 16}
  return PipelineConfig(name="p", defaults=defaults, intermediate=PhaseConfig("inter", {"epochs": epochs}),
                        targets=(PhaseConfig("target", {}),))


def test_pipeline_with_a_changed_config_is_an_error_naming_phase_and_keys(toy_env, tmp_path, capsys):
  from xtjax.experiments.pipeline import phase_configs

  work = tmp_path / "work"
  for name, tcfg, _ in phase_configs(_pipeline(toy_env, 10), work):
    _write_run(work / name, tcfg)
  with pytest.raises(ConfigError, match=r"phases were run with a different config \(inter: epochs\); pass --overwrite"):
    run_pipeline(_pipeline(toy_env, 1), work)
  assert (work / "inter" / "config.yaml").exists()


def test_pipeline_print_config(toy_env, tmp_path, capsys):
  cfg = tmp_path / "p.yaml"
  p = _pipeline(toy_env, 2)
  cfg.write_text(yaml.safe_dump({"name": "p", "defaults": p.defaults, "targets": [{"name": "target"}],
                                 "intermediate": {"name": "inter", "train": {"epochs": 2}}}))
  assert main(["pipeline", str(cfg), "--print-config", "--workdir", str(tmp_path / "w")]) == 0
  printed = yaml.safe_load(capsys.readouterr().out)
  assert set(printed) == {"inter", "target"} and printed["inter"]["epochs"] == 2
  assert printed["target"]["init_from"] == str(tmp_path / "w" / "inter") and not (tmp_path / "w").exists()
