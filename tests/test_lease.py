"""One writer per run directory: a second writer is refused with one line naming the holder, a dead
holder's lease is taken over with one line, locally (O_EXCL) and in a bucket (write-once object with
generation preconditions, tests/fake_gcs.py); sweeps see a held lease as a running run."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xtjax.runs import lease

REPO = Path(__file__).resolve().parents[1]
HOLD = ("import sys, time; from xtjax.runs import lease; lease.acquire(sys.argv[1]); print('held', flush=True); "
        "time.sleep(120)")


def _holder_process(run_dir):
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
  proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True, env=env)
  assert proc.stdout.readline().strip() == "held"
  return proc


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
  run = tmp_path / "run"
  holder = _holder_process(run)
  try:
    with pytest.raises(lease.LeaseHeld) as e:
      lease.acquire(run)
    assert str(e.value).startswith(f"{run}: in use by pid {holder.pid} on {socket.gethostname()} (started ")
    assert str(e.value).endswith("s ago); wait for it to finish, or stop it")
    assert lease.holder_of(run)["pid"] == holder.pid
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  # Its process is gone (no release, no heartbeat): the next writer takes the lease over, saying so.
  assert lease.holder_of(run) is None
  mine = lease.acquire(run)
  assert json.loads((run / lease.LEASE_FILE).read_text())["pid"] == os.getpid()
  mine.release()
  assert not (run / lease.LEASE_FILE).exists() and run.exists()  # made by the holder: not ours to remove


def test_takeover_says_why(tmp_path, caplog):
  run = tmp_path / "run"
  run.mkdir()
  old = time.time() - 3600
  (run / lease.LEASE_FILE).write_text(json.dumps({"host": "other-host", "pid": 7, "started": old,
                                                  "heartbeat": time.time() - 10}))
  with pytest.raises(lease.LeaseHeld, match=r"in use by pid 7 on other-host .*last heartbeat 10 s ago"):
    lease.acquire(run)  # another host's fresh heartbeat: alive
  (run / lease.LEASE_FILE).write_text(json.dumps({"host": "other-host", "pid": 7, "started": old,
                                                  "heartbeat": time.time() - lease.STALE_S - 5}))
  with caplog.at_level("WARNING"):
    held = lease.acquire(run)
  assert f"{run}: taking over the lease of pid 7 on other-host" in caplog.text
  assert f"no heartbeat for {lease.STALE_S + 5:.0f} s > {lease.STALE_S:.0f} s" in caplog.text
  held.release()


def test_nested_takes_and_a_failed_start_leaves_nothing(tmp_path):
  run = tmp_path / "new" / "run"
  outer = lease.acquire(run)
  inner = lease.acquire(run)  # a sweep cell's lease, then the trainer inside it
  assert inner is outer
  inner.release()
  assert (run / lease.LEASE_FILE).exists()
  outer.release()
  assert not run.exists()  # created by the lease, holding nothing else


def test_the_heartbeat_moves_and_a_stolen_lease_is_noticed(tmp_path, monkeypatch):
  monkeypatch.setattr(lease, "HEARTBEAT_S", 0.05)
  held = lease.acquire(tmp_path / "run")
  first = json.loads((tmp_path / "run" / lease.LEASE_FILE).read_text())["heartbeat"]
  deadline = time.monotonic() + 30
  while json.loads((tmp_path / "run" / lease.LEASE_FILE).read_text())["heartbeat"] == first:
    assert time.monotonic() < deadline
    time.sleep(0.05)
  (tmp_path / "run" / lease.LEASE_FILE).write_text(json.dumps({"host": "h", "pid": 1, "heartbeat": 0}))
  while not held.lost:
    assert time.monotonic() < deadline
    time.sleep(0.05)
  held.release()
  assert json.loads((tmp_path / "run" / lease.LEASE_FILE).read_text())["host"] == "h"  # not ours to delete


def test_a_bucket_lease_is_a_write_once_object(tmp_path, monkeypatch, caplog):
  from fake_gcs import fake_gcs

  with fake_gcs(tmp_path / "store", monkeypatch) as store:
    url = "gs://bucket/runs/x"
    held = lease.acquire(url)
    obj = store / "bucket/runs/x" / lease.LEASE_FILE
    assert json.loads(obj.read_text())["pid"] == os.getpid()
    from xtjax import io_utils

    blob = io_utils.gcs_client().bucket("bucket").blob(f"runs/x/{lease.LEASE_FILE}")
    from google.api_core.exceptions import PreconditionFailed

    with pytest.raises(PreconditionFailed):  # what a second writer's create meets
      blob.upload_from_string("{}", if_generation_match=0)
    held.release()
    assert not obj.exists()
    # Another host's lease with a stale heartbeat: deleted at the generation read, then created anew.
    blob.upload_from_string(json.dumps({"host": "worker-3", "pid": 9, "started": 0, "heartbeat": 0}),
                            if_generation_match=0)
    stale_s = lease.STALE_S
    monkeypatch.setattr(lease, "STALE_S", 1e12)
    with pytest.raises(lease.LeaseHeld, match="in use by pid 9 on worker-3"):
      lease.acquire(url)
    monkeypatch.setattr(lease, "STALE_S", stale_s)
    with caplog.at_level("WARNING"):
      lease.acquire(url).release()
    assert "taking over the lease of pid 9 on worker-3" in caplog.text


def test_a_sweep_skips_a_run_another_driver_holds(tmp_path):
  from xtjax.experiments import sweep

  run = sweep.Run("target", "t", tmp_path / "runs" / "t-1", config=None, after=None)
  holder = _holder_process(run.run_dir)
  trained = []
  try:
    assert sweep.run_status(run.run_dir) == "running"
    assert not sweep.should_start(run)
    # Two drivers that both saw it pending: the second cannot take the lease and trains nothing.
    assert sweep.execute_run(run, lambda cfg, d: trained.append(d) or {"status": "finished"}) == "running"
    assert trained == []
  finally:
    holder.kill()
    holder.wait()
  assert sweep.run_status(run.run_dir) == "pending"
  assert sweep.execute_run(run, lambda cfg, d: trained.append(d) or {"status": "finished"}) == "done"
  assert trained == [run.run_dir] and not (run.run_dir / lease.LEASE_FILE).exists()
