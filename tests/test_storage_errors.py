"""A full, read-only or unwritable output disk: one line naming the path, no Orbax tracebacks, and a
later run removes the unfinished checkpoint."""

import errno
import logging
import os
import sys
import tempfile
import threading

import numpy as np
import pytest

from xtjax.cli.main import main
from xtjax.errors import storage_problem

# What Orbax 0.12 raised on a full 600 KB tmpfs during an async save (xtjax train, 2 steps in).
ORBAX_FULL = ('RESOURCE_EXHAUSTED: Error writing local file "/runs/r/checkpoints/2.orbax-checkpoint-tmp/'
              'state.orbax-checkpoint-tmp/_sharding": Failed writing: "/runs/r/checkpoints/2.orbax-checkpoint-tmp/'
              'state.orbax-checkpoint-tmp/_sharding.__lock": Failed to write 35552 bytes to file 7: No space left on '
              "device [os_error_code='28']")


def test_storage_problem_names_the_path():
  assert storage_problem(OSError(errno.ENOSPC, "No space left on device", "/r/summary.json")) == \
      "/r/summary.json: No space left on device"
  assert storage_problem(ValueError(ORBAX_FULL)) == "/runs/r/checkpoints/2: No space left on device"
  try:
    try:
      raise OSError(errno.EROFS, "Read-only file system", "/ro/run")
    except OSError as inner:
      raise RuntimeError("saving failed") from inner
  except RuntimeError as outer:
    assert storage_problem(outer) == "/ro/run: Read-only file system"
  try:
    try:
      raise KeyError("lock")
    except KeyError:
      raise ValueError(ORBAX_FULL)  # noqa: B904 - Orbax's status error raised while handling another
  except ValueError as outer:
    assert storage_problem(outer) == "/runs/r/checkpoints/2: No space left on device"
  assert storage_problem(ValueError("shapes do not match")) is None
  assert storage_problem(OSError(errno.ENOENT, "No such file or directory", "/x")) is None


def _report_run(tmp_path):
  run = tmp_path / "run"
  run.mkdir()
  (run / "summary.json").write_text('{"zero_shot": {"xnli": {"avg": {"accuracy": 70.0}}}}')
  return run


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EDQUOT])
def test_a_failed_write_is_one_line(tmp_path, monkeypatch, capsys, code):
  def full(*args, **kwargs):
    raise OSError(code, os.strerror(code), str(kwargs.get("dir")) + "/.t.csv.x.tmp")

  monkeypatch.setattr(tempfile, "mkstemp", full)
  monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)  # restored after the test
  monkeypatch.setattr(threading, "excepthook", threading.excepthook)
  out = tmp_path / "table.csv"
  assert main(["report", str(_report_run(tmp_path)), "--csv", str(out)]) == 2
  # Writers that fail again while the process exits (TensorBoard's atexit flush) stay quiet.
  thread = threading.Thread(target=full)
  thread.start()
  thread.join()
  err = capsys.readouterr().err
  assert err == f"xtjax report: error: {out}: {os.strerror(code)}\n"
  assert not out.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_directory(tmp_path, capsys):
  locked = tmp_path / "locked"
  locked.mkdir()
  locked.chmod(0o555)
  try:
    assert main(["report", str(_report_run(tmp_path)), "--csv", str(locked / "t.csv")]) == 2
  finally:
    locked.chmod(0o755)
  assert capsys.readouterr().err == f"xtjax report: error: {locked / 't.csv'}: Permission denied\n"


def test_orbax_disk_tracebacks_are_dropped(tmp_path, caplog):
  main(["report", str(_report_run(tmp_path))])  # installs the CLI's log filters
  absl = logging.getLogger("absl")
  try:
    raise ValueError(ORBAX_FULL)
  except ValueError:
    absl.error("Failed to run 5 Handler Commit operations", exc_info=True)
  absl.error("_SignalingThread.run() raised an exception: " + ORBAX_FULL)
  absl.error("an unrelated error")
  assert [r.getMessage() for r in caplog.records if r.name == "absl"] == ["an unrelated error"]


def test_a_later_run_removes_unfinished_checkpoints(tmp_path):
  from xtjax.checkpoint import RunCheckpoints

  partial = [tmp_path / "checkpoints" / "2.orbax-checkpoint-tmp" / "state.orbax-checkpoint-tmp",
             tmp_path / "best" / "3.orbax-checkpoint-tmp-1796012201"]
  for p in partial:
    p.mkdir(parents=True)
  ckpt = RunCheckpoints(tmp_path, async_save=False)
  state = {"w": np.zeros(2, np.float32)}
  ckpt.save(4, state, {"epoch": 0}, {}, force=True)  # a save first waits for Orbax's background clean-up
  ckpt.save_best(4, state, 1.0, {"step": 4})
  ckpt.close()
  assert os.listdir(tmp_path / "checkpoints") == ["4"] and os.listdir(tmp_path / "best") == ["4"]


def test_a_full_disk_names_the_file_being_written(tmp_path):
  from xtjax import io_utils
  from xtjax.train.logbook import Logbook

  def full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")

  with pytest.raises(OSError) as e:
    with io_utils.atomic_path(tmp_path / "emb.npy") as tmp:
      full(tmp)
  assert storage_problem(e.value) == f"{tmp_path / 'emb.npy'}: No space left on device"
  assert os.listdir(tmp_path) == []
  with pytest.raises(FileNotFoundError) as e:  # a read inside the block keeps its own name
    with io_utils.atomic_path(tmp_path / "emb.npy"):
      open(tmp_path / "missing.txt")
  assert e.value.filename == str(tmp_path / "missing.txt")
  book = Logbook(tmp_path, report_to=())
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr("builtins.open", full)
    with pytest.raises(OSError) as e:
      book.write(1, "train/x", {"loss": 1.0})
  assert storage_problem(e.value) == f"{tmp_path / 'metrics.jsonl'}: No space left on device"


def test_orbax_write_errors_name_the_checkpoint_directory(tmp_path, monkeypatch):
  """Orbax's own writes (e.g. `_METADATA` after commit) raise OSErrors that name no file."""
  from xtjax.checkpoint import RunCheckpoints

  ckpt = RunCheckpoints(tmp_path, async_save=False)

  def full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(ckpt.last, "save", full)
  monkeypatch.setattr(ckpt.last, "wait_until_finished", full)
  with pytest.raises(OSError) as e:
    ckpt.save(2, {"w": np.zeros(2, np.float32)}, {}, {})
  assert storage_problem(e.value) == f"{tmp_path / 'checkpoints'}: No space left on device"
  with pytest.raises(OSError) as e:
    ckpt.wait()
  assert storage_problem(e.value) == f"{tmp_path / 'checkpoints'}: No space left on device"
  monkeypatch.undo()
  ckpt.close()
