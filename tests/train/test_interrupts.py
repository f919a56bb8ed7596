"""`xtjax train` as a user meets it: Ctrl-C saves at the current step and exits 130, a second signal
during the save is ignored, a third aborts; two writers into one run directory; a failed start leaves
nothing, so the corrected command needs no --overwrite; a full disk is one line."""

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import toy_config
from xtjax.checkpoint import RunCheckpoints
from xtjax.cli.main import main
from xtjax.runs import identity
from xtjax.train import preemption
from xtjax.train.loop import Trainer

REPO = Path(__file__).resolve().parents[2]


def _write_config(env, path: Path, **kw) -> Path:
  path.write_text(yaml.safe_dump(identity.resolved(toy_config(env, **kw))))
  return path


def _signal_at(monkeypatch, at_step, signum, again_during_save=0):
  """`signum` once the loop logs `at_step`; `again_during_save` more while the final checkpoint is saved."""
  orig_log, orig_save = Trainer._log_train, RunCheckpoints.save

  def log_train(self, book, progress, step, name, metrics):
    orig_log(self, book, progress, step, name, metrics)
    if step == at_step:
      os.kill(os.getpid(), signum)

  def save(self, step, *args, force=False, **kwargs):
    if force:
      for _ in range(again_during_save):
        os.kill(os.getpid(), signum)
    return orig_save(self, step, *args, force=force, **kwargs)

  monkeypatch.setattr(Trainer, "_log_train", log_train)
  monkeypatch.setattr(RunCheckpoints, "save", save)


def test_ctrl_c_saves_at_the_current_step_and_a_second_signal_waits(toy_env, tmp_path, monkeypatch, capsys):
  cfg = _write_config(toy_env, tmp_path / "c.yaml", epochs=3, checkpoint={"every_steps": 100, "async_save": True})
  _signal_at(monkeypatch, 5, signal.SIGINT, again_during_save=1)
  before = signal.getsignal(signal.SIGINT)
  assert main(["train", str(cfg), "--workdir", str(tmp_path / "run")]) == 130
  err = capsys.readouterr().err
  assert err.endswith("saving, please wait\ninterrupted at step 6; saved; rerun the same command to resume\n"), err
  assert RunCheckpoints(tmp_path / "run").latest_steps() == [6]  # metrics are read one step late
  assert signal.getsignal(signal.SIGINT) is before  # the handlers are put back after the save


def test_sigterm_exits_143(toy_env, tmp_path, monkeypatch, capsys):
  cfg = _write_config(toy_env, tmp_path / "c.yaml", epochs=3, checkpoint={"every_steps": 100})
  _signal_at(monkeypatch, 3, signal.SIGTERM)
  assert main(["train", str(cfg), "--workdir", str(tmp_path / "run")]) == 143
  assert capsys.readouterr().err.endswith("interrupted at step 4; saved; rerun the same command to resume\n")
  assert main(["train", str(cfg), "--workdir", str(tmp_path / "run")]) == 0
  summary = json.loads((tmp_path / "run" / "summary.json").read_text())
  assert summary["start"].endswith("at step 4") and summary["status"] == "finished"


def test_a_third_signal_aborts(monkeypatch, capsys):
  exits = []
  monkeypatch.setattr(os, "_exit", exits.append)
  with preemption.Preemption() as pre:
    for _ in range(3):
      os.kill(os.getpid(), signal.SIGINT)
  assert pre.requested and exits == [130] and preemption.exit_code() == 130
  assert capsys.readouterr().err == (
      "saving, please wait\nSIGINT a third time: stopped without saving; a rerun resumes from the last complete "
      "checkpoint\n")


def test_a_failed_start_leaves_nothing_and_the_corrected_command_runs(toy_env, tmp_path, capsys):
  run = tmp_path / "run"
  bad = _write_config(toy_env, tmp_path / "bad.yaml", epochs=1, model={"pretrained": str(tmp_path / "no-model")})
  assert main(["train", str(bad), "--workdir", str(run)]) == 2
  assert str(tmp_path / "no-model") in capsys.readouterr().err
  assert not run.exists()
  unknown = _write_config(toy_env, tmp_path / "unknown.yaml", epochs=1)
  unknown.write_text(unknown.read_text().replace("name: toy_cls", "name: toy_clss"))
  assert main(["train", str(unknown), "--workdir", str(run)]) == 2
  assert "toy_clss" in capsys.readouterr().err and not run.exists()
  good = _write_config(toy_env, tmp_path / "good.yaml", epochs=1)
  assert main(["train", str(good), "--workdir", str(run)]) == 0
  assert sorted(p.name for p in run.iterdir()) == ["best", "checkpoints", "config.yaml", "metrics.jsonl", "model",
                                                   "predictions", "summary.json", "tb", "zero_shot.json"]


def _cli(*args, **popen):
  env = {k: v for k, v in os.environ.items() if not k.startswith("XTJAX_")}
  env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
  return subprocess.Popen([sys.executable, "-m", "xtjax.cli.main", *args], env=env, cwd=str(REPO), text=True,
                          **{"stderr": subprocess.PIPE, **popen})


@pytest.mark.slow
def test_two_writers_into_one_run_directory(toy_env, tmp_path, capsys):
  run = tmp_path / "run"
  cfg = _write_config(toy_env, tmp_path / "c.yaml", epochs=300, log_every=1)
  with open(tmp_path / "first.err", "w") as first_err:
    first = _cli("train", str(cfg), "--workdir", str(run), stdout=subprocess.DEVNULL, stderr=first_err)
  try:
    deadline = time.monotonic() + 300
    while not (run / "lease.json").exists():
      assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.err").read_text()
      time.sleep(0.2)
    assert main(["train", str(cfg), "--workdir", str(run)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"xtjax train: error: {run}: in use by pid {first.pid} on {socket.gethostname()} (started "), err
    while not (run / "metrics.jsonl").exists():  # training: Ctrl-C now saves
      assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.err").read_text()
      time.sleep(0.2)
  finally:
    first.send_signal(signal.SIGINT)
    first.wait(timeout=300)
  assert first.returncode == 130, (tmp_path / "first.err").read_text()[-3000:]
  assert "saved; rerun the same command to resume" in (tmp_path / "first.err").read_text()
  rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
  steps = [r["step"] for r in rows if r["kind"].startswith("train/")]
  assert steps == sorted(set(steps)), "two writers logged into one metrics.jsonl"
  assert not (run / "lease.json").exists()


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a 96 KB tmpfs")
def test_a_full_disk_is_one_line(toy_env, tmp_path):
  disk = tmp_path / "disk"
  disk.mkdir()
  if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(disk)], capture_output=True).returncode:
    pytest.skip("cannot mount a tmpfs here")
  try:
    cfg = _write_config(toy_env, tmp_path / "c.yaml", epochs=2, checkpoint={"every_steps": 2, "async_save": True})
    proc = _cli("train", str(cfg), "--workdir", str(disk / "run"), stdout=subprocess.DEVNULL)
    _, err = proc.communicate(timeout=600)
  finally:
    subprocess.run(["umount", str(disk)], check=False)
  lines = [x for x in err.splitlines() if "train:" not in x[:8]]  # the progress bar's lines start `train:`
  assert proc.returncode == 2
  assert "Traceback" not in err, err[-3000:]
  assert lines[-1] == f"xtjax train: error: {disk / 'run' / 'checkpoints'}/2: {os.strerror(errno.ENOSPC)}", err[-3000:]


def test_a_pipeline_directory_has_one_writer(toy_env, tmp_path):
  from test_lease import _holder_process

  from xtjax.experiments.pipeline import PhaseConfig, PipelineConfig, run_pipeline
  from xtjax.runs import lease

  task = {"name": "toy_cls", "data": {"path": str(toy_env["data"] / "{split}.{lang}.jsonl")}}
  cfg = PipelineConfig(name="p", defaults={"model": {"pretrained": str(toy_env["hf"])}, "tasks": [task]},
                       targets=(PhaseConfig("target", {}),))
  holder = _holder_process(tmp_path / "work")
  try:
    with pytest.raises(lease.LeaseHeld, match=rf"{tmp_path / 'work'}: in use by pid {holder.pid} "):
      run_pipeline(cfg, tmp_path / "work")
  finally:
    holder.kill()
    holder.wait()
  assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["lease.json"]  # no phase started
