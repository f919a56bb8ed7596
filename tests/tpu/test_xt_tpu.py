"""tpu/xt-tpu against a fake `gcloud` on PATH that records its arguments, answers `describe` from a
scripted list of states and runs ssh commands in a fake worker home, where `.venv/bin/xtjax` records
the words it was started with."""

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
XT_TPU = ROOT / "tpu" / "xt-tpu"

FAKE_GCLOUD = textwrap.dedent("""\
    #!{python}
    import json, os, shutil, subprocess, sys
    args = sys.argv[1:]
    with open(os.environ["FAKE_LOG"], "a") as f:
      f.write(json.dumps(args) + "\\n")
    if os.environ.get("FAKE_GCLOUD_FORBIDDEN"):  # a dry run reached gcloud: fail loudly as well as record
      sys.exit(97)
    if "describe" in args:
      kind = "qr" if "queued-resources" in args else "vm"
      path = os.environ["FAKE_STATES"]
      states = json.load(open(path))
      seq = states.get(kind, [])
      print(seq.pop(0) if len(seq) > 1 else (seq[0] if seq else ""))
      json.dump(states, open(path, "w"))
    elif "scp" in args:
      shutil.copy(args[args.index("scp") + 1], os.path.join(os.environ["FAKE_HOME"], "xtjax.tgz"))
    elif "ssh" in args:
      cmd = next(a.split("=", 1)[1] for a in args if a.startswith("--command="))
      if "uv python install" in cmd:  # the set-up script needs the network: recorded, not run
        sys.exit(0)
      env = dict(os.environ, HOME=os.environ["FAKE_HOME"], TPU_WORKER_ID="0")
      sys.exit(subprocess.run(["bash", "-c", cmd], env=env).returncode)
    """)

FAKE_XTJAX = textwrap.dedent("""\
    #!{python}
    import json, os, sys
    rec = os.path.join(os.environ["HOME"], "launched.jsonl")
    with open(rec, "a") as f:
      f.write(json.dumps(sys.argv[1:]) + "\\n")
    n = sum(1 for _ in open(rec))
    if n >= int(os.environ.get("FAKE_FINISH_AFTER", "1000")):  # the resumed run finishes
      w = sys.argv[sys.argv.index("--workdir") + 1]
      os.makedirs(w, exist_ok=True)
      json.dump({{"status": "finished"}}, open(os.path.join(w, "summary.json"), "w"))
    """)


@pytest.fixture
def fake(tmp_path):
  bin_dir, home = tmp_path / "bin", tmp_path / "home"
  venv_bin = home / "xtjax" / ".venv" / "bin"
  for d in (bin_dir, venv_bin):
    d.mkdir(parents=True)
  for path, text in ((bin_dir / "gcloud", FAKE_GCLOUD), (venv_bin / "xtjax", FAKE_XTJAX)):
    path.write_text(text.format(python=sys.executable))
    path.chmod(0o755)
  (venv_bin / "python").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
  (venv_bin / "python").chmod(0o755)
  env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", FAKE_LOG=str(tmp_path / "calls.jsonl"),
             FAKE_STATES=str(tmp_path / "states.json"), FAKE_HOME=str(home), XT_TPU_STATE_DIR=str(tmp_path / "state"),
             TMPDIR=str(tmp_path))
  (tmp_path / "states.json").write_text("{}")

  class Fake:
    root = tmp_path

    def run(self, *args, check=True, **extra_env):
      r = subprocess.run([sys.executable, str(XT_TPU), *args], env={**env, **extra_env}, text=True,
                         capture_output=True, timeout=120)
      if check:
        assert r.returncode == 0, r.stderr
      return r

    def calls(self):
      p = tmp_path / "calls.jsonl"
      return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []

    def states(self, **seqs):
      (tmp_path / "states.json").write_text(json.dumps(seqs))

    def launched(self, n=1):
      rec = home / "launched.jsonl"
      for _ in range(200):  # the launch is detached: wait for the fake xtjax to record itself
        if rec.exists() and len(rec.read_text().splitlines()) >= n:
          break
        time.sleep(0.05)
      return [json.loads(line) for line in rec.read_text().splitlines()]

  return Fake()


def test_create_direct_and_queued(fake):
  fake.run("create", "a", "--type", "v4-32", "--zone", "us-central2-b", "--spot")
  fake.run("create", "b", "--type", "v5e-256", "--zone", "us-east5-a", "--project", "p1", "--reserved", "--queued")
  assert fake.calls() == [
      ["compute", "tpus", "tpu-vm", "create", "a", "--zone=us-central2-b", "--accelerator-type=v4-32",
       "--version=tpu-ubuntu2204-base", "--spot"],
      ["compute", "tpus", "queued-resources", "create", "b", "--node-id=b", "--zone=us-east5-a", "--project=p1",
       "--accelerator-type=v5litepod-256", "--runtime-version=v2-alpha-tpuv5-lite", "--reserved"]]
  fake.run("delete", "b")
  assert fake.calls()[-1] == ["compute", "tpus", "queued-resources", "delete", "b", "--zone=us-east5-a",
                              "--project=p1", "--force", "--quiet"]
  r = fake.run("create", "c", "--type", "v9-8", "--zone", "z", check=False)
  assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--type v9-8" in r.stderr


def test_dry_run_prints_commands_and_runs_nothing(fake):
  r = fake.run("create", "a", "--type", "v5p-128", "--zone", "z", "--dry-run")
  assert r.stdout.strip() == ("gcloud compute tpus tpu-vm create a --zone=z --accelerator-type=v5p-128 "
                              "--version=v2-alpha-tpuv5")
  assert fake.calls() == []
  fake.run("create", "a", "--type", "v4-8", "--zone", "z")
  before = len(fake.calls())
  for sub in (["setup", "a"], ["launch", "a", "--", "xtjax", "train", "c.yaml"], ["status", "a"], ["logs", "a"],
              ["stop", "a"], ["delete", "a"]):
    r = fake.run(sub[0], "--dry-run", *sub[1:])
    assert "gcloud compute tpus" in r.stdout, sub
    if sub[0] == "setup":  # its own Python 3.11 whatever the image, then the TPU lock
      assert "uv python install 3.11" in r.stdout and "scripts/_setup_env.sh tpu,cluster" in r.stdout
  assert len(fake.calls()) == before


def test_launch_quotes_overrides_and_logs_per_worker(fake):
  fake.run("create", "a", "--type", "v4-32", "--zone", "z")
  workdir = fake.root / "run dir"
  words = ["xtjax", "pipeline", "configs/x.yaml", "--workdir", str(workdir), "name=it's a test",
           "optim.freeze=[a/.*, 'b']", "x=$HOME;rm -rf /", "y=\"q\""]
  fake.run("launch", "a", "--", *words)
  assert fake.launched() == [words[1:]]  # every word arrives as it was given
  ssh = fake.calls()[-1]
  assert ssh[:5] == ["compute", "tpus", "tpu-vm", "ssh", "a"] and "--worker=all" in ssh
  for _ in range(100):
    if (workdir / "logs" / "worker-0.log").exists():
      break
    time.sleep(0.05)
  assert (workdir / "logs" / "worker-0.log").exists()
  fake.run("stop", "a")
  assert "pkill -TERM" in fake.calls()[-1][-1]


def test_status_reports_queued_state(fake):
  fake.run("create", "q", "--type", "v4-32", "--zone", "z", "--queued")
  fake.states(qr=["WAITING_FOR_RESOURCES"])
  r = fake.run("status", "q")
  assert "q: WAITING_FOR_RESOURCES (v4-32, z, queued)" in r.stdout


def test_watch_relaunches_after_preemption_until_finished(fake):
  fake.run("create", "s", "--type", "v4-32", "--zone", "z", "--spot")
  workdir = fake.root / "w"
  fake.run("launch", "s", "--", "xtjax", "train", "c.yaml", "--workdir", str(workdir), "a=1 2")
  fake.launched(1)
  # preempted, then (after re-creation) CREATING, READY; the relaunched command finishes the run.
  fake.states(vm=["PREEMPTED", "CREATING", "READY", "READY"])
  r = fake.run("watch", "s", "--interval", "0", "--max-rounds", "10", FAKE_FINISH_AFTER="2")
  assert "re-creating" in r.stdout and "run finished" in r.stdout
  launched = fake.launched(2)
  assert launched == [["train", "c.yaml", "--workdir", str(workdir), "a=1 2"]] * 2
  calls = [c[:4] for c in fake.calls()]
  i_del = calls.index(["compute", "tpus", "tpu-vm", "delete"])
  i_new = calls.index(["compute", "tpus", "tpu-vm", "create"], i_del)
  assert ["compute", "tpus", "tpu-vm", "scp"] in calls[i_new:]  # set up again before the relaunch


def test_watch_without_launch_is_one_line_error(fake):
  fake.run("create", "a", "--type", "v4-8", "--zone", "z")
  r = fake.run("watch", "a", check=False)
  assert r.returncode == 2 and "nothing launched yet" in r.stderr and r.stderr.count("\n") == 1


def test_dry_run_after_the_name_is_a_dry_run_and_after_the_double_dash_a_word(fake):
  """`launch NAME --dry-run -- CMD` used to send `--dry-run` to the workers and really run gcloud."""
  fake.run("create", "a", "--type", "v4-32", "--zone", "z")
  before = len(fake.calls())
  r = fake.run("launch", "a", "--dry-run", "--", "xtjax", "pipeline", "c.yaml", FAKE_GCLOUD_FORBIDDEN="1")
  assert len(fake.calls()) == before
  assert "nohup setsid .venv/bin/xtjax pipeline c.yaml >" in r.stdout and "--dry-run" not in r.stdout
  for argv in (["--dry-run", "stop", "a"], ["stop", "--dry-run", "a"], ["stop", "a", "--dry-run"]):
    assert fake.run(*argv, FAKE_GCLOUD_FORBIDDEN="1").stdout.startswith("gcloud compute tpus tpu-vm ssh a ")
  assert len(fake.calls()) == before
  fake.run("launch", "a", "--", "xtjax", "train", "c.yaml", "--workdir", str(fake.root / "w"), "--dry-run")
  assert fake.launched() == [["train", "c.yaml", "--workdir", str(fake.root / "w"), "--dry-run"]]
  assert len(fake.calls()) == before + 1  # that one was real


def _readme_sequence(title: str) -> list[list[str]]:
  """The `tpu/xt-tpu ...` lines of tpu/README.md's bash block under `## TITLE`, continuations joined."""
  text = (ROOT / "tpu" / "README.md").read_text()
  block = re.search(rf"## {re.escape(title)}\n.*?```bash\n(.*?)```", text, re.S).group(1)
  lines = block.replace("\\\n", " ").splitlines()
  return [shlex.split(line, comments=True)[1:] for line in lines if line.startswith("tpu/xt-tpu ")]


def test_the_readme_v4_32_sequence_previews_end_to_end_without_gcloud(fake):
  """Every line of the README's v4-32 sequence with `--dry-run` after the name: create records a
  hypothetical TPU that setup, launch, status, logs, watch and delete read; stdout holds only
  commands (gcloud, and setup's local tar); gcloud is never started; no real record is written."""
  seq = _readme_sequence("v4-32, four hosts")
  assert [argv[0] for argv in seq] == ["create", "setup", "launch", "status", "logs", "watch", "delete"]
  printed = {}
  for argv in seq:
    r = fake.run(*argv[:2], "--dry-run", *argv[2:], FAKE_GCLOUD_FORBIDDEN="1")
    printed[argv[0]] = [shlex.split(line) for line in r.stdout.splitlines()]
    assert printed[argv[0]], argv
    for cmd in printed[argv[0]]:
      assert cmd[0] == "gcloud" or (argv[0] in ("setup", "watch") and cmd[0] == "tar"), (argv, cmd)
  assert fake.calls() == []
  assert list((fake.root / "state").iterdir()) == []  # delete ended the hypothetical TPU; no real record
  assert not list(fake.root.glob("xt-tpu-*.tgz"))  # setup's tarball was not made either
  assert printed["create"] == [["gcloud", "compute", "tpus", "tpu-vm", "create", "xt-v4-32", "--zone=us-central2-b",
                                "--accelerator-type=v4-32", "--version=tpu-ubuntu2204-base"]]
  assert printed["setup"][0][:2] == ["tar", "-C"]
  assert [c[4] for c in printed["setup"][1:]] == ["scp", "ssh"]
  launched = printed["launch"][0][-1]
  assert ("nohup setsid .venv/bin/xtjax pipeline configs/phang2020/xlmr_large_mnli.yaml --workdir "
          "/mnt/my-bucket/runs/mnli-e10 intermediate.train.epochs=10 defaults.mesh.fsdp=4 >") in launched
  assert [c[4] for c in printed["status"]] == ["describe", "ssh"]
  assert "--worker=3" in printed["logs"][0]
  # watch: the state, the finished check, the relaunch, then the recovery from a preemption.
  verbs = [c[4] if c[0] == "gcloud" else "tar" for c in printed["watch"]]
  assert verbs == ["describe", "ssh", "ssh", "ssh", "delete", "create", "describe", "tar", "scp", "ssh", "ssh"]
  assert printed["watch"][-1][-1] == launched  # the same command, relaunched
  assert printed["delete"] == [["gcloud", "compute", "tpus", "tpu-vm", "delete", "xt-v4-32", "--zone=us-central2-b",
                                "--quiet"]]


def test_a_dry_run_never_writes_a_real_tpus_record(fake):
  fake.run("create", "a", "--type", "v4-8", "--zone", "z")
  real = (fake.root / "state" / "a.json").read_text()
  fake.run("launch", "a", "--dry-run", "--", "xtjax", "train", "c.yaml", FAKE_GCLOUD_FORBIDDEN="1")
  fake.run("delete", "a", "--dry-run", FAKE_GCLOUD_FORBIDDEN="1")
  assert (fake.root / "state" / "a.json").read_text() == real
  r = fake.run("setup", "b", "--dry-run", check=False)
  assert r.returncode == 2 and "create it with `xt-tpu create b ... --dry-run` first" in r.stderr
  assert r.stderr.count("\n") == 1
