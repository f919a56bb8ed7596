"""The shipped configs/tiny/toy_cls.yaml runs as shipped after the documented `python -m xtjax.tiny` command."""

from pathlib import Path

import pytest

from xtjax import tiny
from xtjax.cli.main import main

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tiny" / "toy_cls.yaml"


@pytest.mark.slow
def test_toy_config_runs_on_what_the_tiny_command_writes(tmp_path, monkeypatch, capsys):
  monkeypatch.chdir(tmp_path)
  command = next(line for line in CONFIG.read_text().splitlines() if "python -m xtjax.tiny" in line)
  argv = command.split("`")[1].split()[3:]  # the documented flags, as written in the config
  assert argv == ["--out", "runs/demo/hf-tiny-xlmr", "--data", "runs/demo/data"]
  assert tiny.main(argv) == 0
  assert main(["train", str(CONFIG), "--workdir", "runs/demo/toy_cls", "steps=2", "mesh.data=1", "mesh.devices=1",
               "checkpoint.async_save=false"]) == 0
  out = capsys.readouterr().out
  assert "finished 2 steps in runs/demo/toy_cls" in out
  assert {"en", "de", "es"} <= set(out.split())  # zero-shot in every configured language
