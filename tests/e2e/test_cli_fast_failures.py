"""Mistakes answered at once: a typo'd key or task in a train / pipeline / sweep config is one line (with "did
you mean") before JAX is imported; `plan` on a pipeline names its phases; `sweep`'s usage reads as two
commands; a lone `train` run keeps its feature cache inside its workdir."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from xtjax.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
# Runs the CLI in a fresh interpreter and reports whether JAX was imported before it returned.
PROBE = ("import json, sys; from xtjax.cli.main import main; code = main(sys.argv[1:]); "
         "print(json.dumps({'code': code, 'jax': 'jax' in sys.modules}))")


def _probe(*argv):
  p = subprocess.run([sys.executable, "-c", PROBE, *map(str, argv)], capture_output=True, text=True, cwd=ROOT)
  return json.loads(p.stdout.splitlines()[-1]), p.stderr.strip()


@pytest.fixture
def configs(tmp_path):
  pipe = (ROOT / "configs/tiny/pipeline.yaml").read_text()
  (tmp_path / "typo_key.yaml").write_text(pipe.replace("batch_size: 16", "batch_sise: 16"))
  (tmp_path / "typo_task.yaml").write_text(pipe.replace("- name: xnli\n", "- name: xnlii\n"))
  (tmp_path / "train.yaml").write_text("model: {pretrained: x}\ntasks:\n  - name: xnlii\n")
  (tmp_path / "sweep.yaml").write_text("name: s\npipeline: typo_task.yaml\n")
  return tmp_path


def test_config_mistakes_fail_in_one_line_before_jax_loads(configs):
  cases = [
      (("train", configs / "train.yaml", "--workdir", configs / "w"),
       "train.yaml: tasks[0].name: unknown task 'xnlii'; did you mean 'xnli'?"),
      (("pipeline", configs / "typo_key.yaml", "--workdir", configs / "p"),
       "batch_sise: unknown key; did you mean 'batch_size'?"),
      (("pipeline", configs / "typo_task.yaml", "--workdir", configs / "p"),
       "[phase target-xnli]: tasks[0].name: unknown task 'xnlii'; did you mean 'xnli'?"),
      (("sweep", configs / "sweep.yaml", "--workdir", configs / "s"),
       "[target-xnli]: tasks[0].name: unknown task 'xnlii'; did you mean 'xnli'?"),
  ]
  for argv, message in cases:
    result, err = _probe(*argv)
    assert result == {"code": 2, "jax": False}, (argv, err)
    assert message in err and err.count("\n") == 0, err


def test_plan_on_a_pipeline_names_its_phases(capsys):
  assert main(["plan", str(ROOT / "configs/tiny/pipeline.yaml"), "--topology", "cpu:1"]) == 2
  err = capsys.readouterr().err
  assert "choose a phase with --phase (phases: intermediate-mnli, target-xnli, target-tatoeba)" in err


def test_sweep_usage_is_two_commands(capsys):
  with pytest.raises(SystemExit):
    main(["sweep", "--help"])
  usage = capsys.readouterr().out.split("\n\n")[0]
  assert usage.splitlines() == [
      "usage: xtjax sweep SWEEP.yaml [k=v ...] [--workdir W] [--dry-run] [--backend ray [--address A] [--slice v4-32]]",
      "       xtjax sweep status SWEEP.yaml [--workdir W] [--json]"]


def test_a_train_run_keeps_its_feature_cache_in_its_workdir(tmp_path, monkeypatch):
  seen = {}

  def fake_train(cfg, workdir, overwrite=False):
    seen["cache_dir"] = cfg.cache_dir
    return {"status": "finished", "step": 0, "zero_shot": {}}

  monkeypatch.setattr("xtjax.train.loop.train", fake_train)
  (tmp_path / "train.yaml").write_text("model: {pretrained: x}\ntasks:\n  - name: xnli\n")
  assert main(["train", str(tmp_path / "train.yaml"), "--workdir", str(tmp_path / "run")]) == 0
  assert seen["cache_dir"] == str(tmp_path / "run" / "feature_cache")  # not tmp_path/.feature_cache
  assert main(["train", str(tmp_path / "train.yaml"), "--workdir", str(tmp_path / "run"),
               f"cache_dir={tmp_path / 'shared'}"]) == 0
  assert seen["cache_dir"] == str(tmp_path / "shared")
