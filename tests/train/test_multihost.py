"""Two processes joined by `jax.distributed.initialize` on localhost (CPU, 2 devices each) train a
few steps, each tokenising only its example shards and building only its slice of every global
batch; they train like one process with all 4 devices; SIGTERM to one of them (twice: the second during the final
save) stops both at the same step with one checkpoint, and a second invocation resumes from it and ends bit for bit where an
uninterrupted run ends. Evaluated by two processes, dev and zero-shot scores and prediction files equal
one process's, each process having featurised only its share of every split."""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).with_name("multihost_worker.py")
REPO = Path(__file__).resolve().parents[2]
NUM_PROCESSES = 2
TIMEOUT_S = 600  # per launch; ~70-130 s each on 2 busy CPU cores, 5-6 min at a load average of 20
STEPS, STOP_AFTER, BATCH = 8, 3, 8
# FSDP over all 4 devices: every batch and every parameter (and Adam moment) is split across the two
# processes, so each one writes and restores its own shards. `data=4` (replicated parameters) passes
# too; one mesh keeps this test at three launches.
MESH = "data=1,fsdp=4"


def _free_port() -> int:
  try:
    import portpicker

    return portpicker.pick_unused_port()
  except ImportError:
    import socket

    with socket.socket() as s:
      s.bind(("127.0.0.1", 0))
      return s.getsockname()[1]


def _launch(env_root: Path, workdir: Path, name: str, mesh: str, *extra: str,
            processes: int = NUM_PROCESSES, env_extra: dict | None = None, check: bool = True) -> list:
  """Runs the worker as `processes` processes of one cluster (4 devices in all); returns their JSON results
  (`check=False`: their exit codes, whatever they are)."""
  port = _free_port()
  procs, logs, outs = [], [], []
  for pid in range(processes):
    env = {k: v for k, v in os.environ.items() if not k.startswith("XTJAX_")}
    if processes > 1:
      env.update(XTJAX_COORDINATOR=f"127.0.0.1:{port}", XTJAX_NUM_PROCESSES=str(processes),
                 XTJAX_PROCESS_ID=str(pid))
    env.update(env_extra or {})
    env.update(JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={4 // processes}",  # replaces the session's 8
               TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p]))
    out = env_root / f"{name}.p{pid}.json"
    log = open(env_root / f"{name}.p{pid}.log", "w")
    cmd = [sys.executable, str(WORKER), "--hf", str(env_root / "hf"), "--data", str(env_root / "data"),
           "--workdir", str(workdir), "--out", str(out), "--steps", str(STEPS), "--mesh", mesh, *extra]
    procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(REPO)))
    logs.append(log)
    outs.append(out)
  deadline = time.monotonic() + TIMEOUT_S
  try:
    # Until all exit, one fails (its peer would wait for it at the next barrier) or time runs out.
    while time.monotonic() < deadline:
      codes = [p.poll() for p in procs]
      if all(c is not None for c in codes) or (check and any(c not in (None, 0) for c in codes)):
        break
      time.sleep(0.5)
  finally:
    hung = [p for p in procs if p.poll() is None]
    for p in hung:
      p.send_signal(signal.SIGUSR1)  # the worker dumps every thread's stack to its log: where it hangs
    if hung:
      time.sleep(3)
    for p in hung:
      p.kill()
      p.wait()
    for log in logs:
      log.close()
  if not check:
    return [p.returncode for p in procs]
  failed = [(pid, p.returncode) for pid, p in enumerate(procs) if p.returncode != 0]
  if failed:
    tails = "\n".join(f"--- process {pid} (rc {rc}) ---\n" + _tail(env_root / f"{name}.p{pid}.log")
                      for pid, rc in failed)
    pytest.fail(f"{name}: worker processes failed or timed out after {TIMEOUT_S}s: {failed}\n{tails}")
  return [json.loads(o.read_text()) for o in outs]


def _tail(path: Path, n: int = 60) -> str:
  return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


def _assert_shards_partition_global_batches(results, num_examples: int):
  """Per step, the processes built disjoint slices of the same global batch, each from its own example
  shards only; over an epoch the slices hold every example once."""
  per_process = [r["batches"] for r in results]
  assert len({len(b) for b in per_process}) == 1
  seen = {}
  for step, recs in enumerate(zip(*per_process)):
    assert [r["process_index"] for r in recs] == list(range(NUM_PROCESSES))
    assert all(r["process_count"] == NUM_PROCESSES and r["num_shards"] == BATCH for r in recs)
    assert all(r["batch_rows"] == BATCH // NUM_PROCESSES for r in recs), "each process builds only its slice"
    assert len({(r["epoch"], r["index"]) for r in recs}) == 1, f"step {step}: processes at different positions"
    for r in recs:
      assert all(e % BATCH in r["owned_shards"] for e in r["examples"]), f"step {step}: rows of another process"
    shards = [set(r["examples"]) for r in recs]
    assert not set.intersection(*shards), f"step {step}: shards overlap {shards}"
    seen.setdefault(recs[0]["epoch"], []).extend(e for r in recs for e in r["examples"])
  for epoch, examples in seen.items():
    assert len(examples) == len(set(examples)), f"epoch {epoch}: an example twice"
  if per_process[0][0]["epoch"] == 0 and per_process[0][0]["index"] == 0 and 1 in seen:  # epoch 0 ran whole
    assert sorted(seen[0]) == list(range(num_examples))


def _assert_each_process_featurised_its_half(results, num_examples: int):
  """The featuriser saw each process's own training examples (round-robin shards) and never the split."""
  owned = [set(r["train_examples"]) for r in results]
  assert not set.intersection(*owned) and set.union(*owned) == set(range(num_examples))
  for r, mine in zip(results, owned):
    assert mine == {e for e in range(num_examples) if e % BATCH in r["batches"][0]["owned_shards"]}
    assert len(mine) in r["featurized"] and num_examples not in r["featurized"], r["featurized"]


def _assert_params_close(a_npz: Path, b_npz: Path, rel: float = 2e-5):
  a, b = np.load(a_npz), np.load(b_npz)
  assert a.files == b.files
  for k in a.files:
    x, y = a[k], b[k]
    err = np.linalg.norm(x - y) / max(np.linalg.norm(x), 1e-12)
    assert err <= rel, f"{k}: relative error {err:.3g}"


def _encoder_checksum(model_dir: Path) -> str:
  """sha256 of the encoder a finished run exported (hashed like multihost_worker._checksum)."""
  import jax
  import numpy as np

  from xtjax.models.loading import load_pretrained

  h = hashlib.sha256()
  for x in jax.tree.leaves(load_pretrained(model_dir, with_tokenizer=False).params):
    h.update(np.asarray(jax.device_get(x)).tobytes())
  return h.hexdigest()


@pytest.mark.slow
def test_two_processes_train_save_and_resume(tmp_path):
  from xtjax.tasks.synthetic import write_toy_data
  from xtjax.tiny import make_tiny_hf

  make_tiny_hf(tmp_path / "hf", "xlm-roberta")
  write_toy_data(tmp_path / "data", n_train=44, n_eval=16, languages=("en",))  # 6 batches, the last padded

  full = _launch(tmp_path, tmp_path / "full", "full", MESH, "--save-params", str(tmp_path / "full.npz"))
  # The same run as one process with all 4 devices: the same global batches, so the same training.
  one = _launch(tmp_path, tmp_path / "one", "one", MESH, "--save-params", str(tmp_path / "one.npz"), processes=1)
  # SIGTERM reaches only process 1: both must agree to stop at the same step and save it once.
  # ...and a second SIGTERM there while the final checkpoint is written must not cut the save short.
  cut = _launch(tmp_path, tmp_path / "cut", "cut", MESH, "--sigterm-at", str(STOP_AFTER), "--sigterm-process", "1",
                "--sigterm-again-during-save")
  assert "saving, please wait" in (tmp_path / "cut.p1.log").read_text()
  resumed = _launch(tmp_path, tmp_path / "cut", "resumed", MESH)

  for r in full + cut + resumed:
    assert (r["process_count"], r["device_count"], r["local_device_count"]) == (NUM_PROCESSES, 4, 2)
    assert r["mesh"] == {"data": 1, "fsdp": 4, "tensor": 1}
    assert r["split_across_processes"] > 0  # not merely replicated
  assert [r["process_index"] for r in full] == list(range(NUM_PROCESSES))

  # Each process tokenised only its example shards (the first launch found no feature cache).
  _assert_each_process_featurised_its_half(full, 44)
  assert 44 in one[0]["featurized"] and one[0]["train_examples"] == list(range(44))
  # ...and summary.json's truncation counts the whole splits, as one process does.
  assert full[0]["truncation"] == full[1]["truncation"] == one[0]["truncation"]
  assert one[0]["truncation"]["toy_cls"]["train"]["examples"] == 44

  # Every process built only its slice of each global batch; together the slices are the batch.
  for run in (full, cut, resumed):
    _assert_shards_partition_global_batches(run, 44)
  assert len(full[0]["batches"]) == STEPS and len(cut[0]["batches"]) == STOP_AFTER
  assert len(resumed[0]["batches"]) == STEPS - STOP_AFTER
  # Resume replays the stream from the saved data position.
  resumed_stream = [b["examples"] for b in cut[0]["batches"] + resumed[0]["batches"]]
  assert resumed_stream == [b["examples"] for b in full[0]["batches"]]
  # One process builds the same global batches (its rows are the two processes' slices, in order).
  assert [b["examples"] for b in one[0]["batches"]] == [
      x["examples"] + y["examples"] for x, y in zip(full[0]["batches"], full[1]["batches"])]
  assert one[0]["status"] == "finished" and one[0]["step"] == STEPS
  np.testing.assert_allclose([x["loss"] for x in one[0]["losses"]], [x["loss"] for x in full[0]["losses"]],
                             rtol=1e-5)
  _assert_params_close(tmp_path / "one.npz", tmp_path / "full.npz")

  # The processes agree on the state and on every logged loss.
  for run in (full, cut, resumed):
    assert run[0]["params"] == run[1]["params"]
    assert run[0]["losses"] == run[1]["losses"]

  # One checkpoint saved at the interruption, restored by the second invocation.
  assert all(r["status"] == "preempted" and r["step"] == STOP_AFTER for r in cut)
  assert all(r["checkpoint_steps"] == [STOP_AFTER] for r in cut)
  assert all(r["start"].endswith(f"at step {STOP_AFTER}") for r in resumed)
  assert all(r["status"] == "finished" and r["step"] == STEPS for r in resumed + full)

  # Interrupted + resumed == uninterrupted, on the same mesh: bit for bit.
  assert resumed[0]["params"] == full[0]["params"]
  full_losses = {x["step"]: x["loss"] for x in full[0]["losses"]}
  for x in cut[0]["losses"] + resumed[0]["losses"]:
    assert x["loss"] == full_losses[x["step"]], x

  # A finished run exports its (best = last) encoder, gathered from both processes.
  for workdir, run in ((tmp_path / "full", full), (tmp_path / "cut", resumed)):
    assert _encoder_checksum(workdir / "model") == run[0]["encoder"]["sha256"]


@pytest.mark.slow
@pytest.mark.parametrize("killed", [1, 0])
def test_a_killed_peer_is_one_line(tmp_path, killed):
  """SIGKILL of one process (0 also hosts the coordination service): the survivor prints one line and exits 75
  after XTJAX_PEER_TIMEOUT_S, not a C++ abort."""
  from xtjax.parallel import peers
  from xtjax.tasks.synthetic import write_toy_data
  from xtjax.tiny import make_tiny_hf

  make_tiny_hf(tmp_path / "hf", "xlm-roberta")
  write_toy_data(tmp_path / "data", n_train=44, n_eval=16, languages=("en",))
  survivor = 1 - killed
  codes = _launch(tmp_path, tmp_path / "run", "killed", MESH, "--sigkill-at", "5", "--sigterm-process", str(killed),
                  "--checkpoint-every", "2", env_extra={"XTJAX_PEER_TIMEOUT_S": "10"}, check=False)
  assert codes[survivor] == peers.EXIT_CODE and codes[killed] == -signal.SIGKILL, \
      (codes, _tail(tmp_path / f"killed.p{survivor}.log"))
  log = (tmp_path / f"killed.p{survivor}.log").read_text()
  last = log.strip().splitlines()[-1]
  m = re.fullmatch(rf"process {killed} of 2 stopped responding at step 5; last complete checkpoint: "
                   r"(step (\d+)|none); rerun to resume", last)
  assert m, log[-3000:]
  assert "Traceback" not in log and "Check failed" not in log and "SIGABRT" not in log, log[-3000:]
  done = peers.complete_checkpoints(tmp_path / "run" / "checkpoints")
  assert m.group(2) is None or int(m.group(2)) in done


def _write_toy_squad(folder: Path, sizes: dict, seed: int = 0) -> None:
  """XQuAD-format files {split}.{lang}.json: one-word answers in contexts long enough for several windows."""
  rng = np.random.default_rng(seed)
  words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "near", "red", "barn", "today"]
  folder.mkdir(parents=True, exist_ok=True)
  for (split, lang), n in sizes.items():
    paragraphs = []
    for i in range(n):
      context = " ".join(rng.choice(words, size=int(rng.integers(8, 20))))
      start = context.index(" ") + 1
      answer = context[start:].split(" ")[0]
      paragraphs.append({"context": context, "qas": [{"id": f"{split}-{lang}-{i}", "question": f"where {answer} ?",
                                                       "answers": [{"text": answer, "answer_start": start}]}]})
    (folder / f"{split}.{lang}.json").write_text(json.dumps({"version": "1.1", "data": [
        {"title": "toy", "paragraphs": paragraphs}]}))


def _files(folder: Path) -> dict:
  return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_two_processes_evaluate_their_shares_like_one(tmp_path):
  from xtjax.tasks.synthetic import write_toy_data
  from xtjax.tiny import make_tiny_hf

  make_tiny_hf(tmp_path / "hf", "xlm-roberta")
  write_toy_data(tmp_path / "data", n_train=20, n_eval=13, languages=("en", "de"))
  _write_toy_squad(tmp_path / "data" / "qa", {("train", "en"): 8, ("dev", "en"): 9, ("test", "en"): 11,
                                              ("test", "de"): 10})
  two = _launch(tmp_path, tmp_path / "two", "eval2", MESH, "--evaluate")
  one = _launch(tmp_path, tmp_path / "one", "eval1", MESH, "--evaluate", processes=1)

  # The same scores on both processes and as one process; the same prediction files (process 0 writes).
  assert two[0]["dev"] == two[1]["dev"] == one[0]["dev"]
  assert set(one[0]["dev"]) == {"toy_cls", "xquad"} and one[0]["dev"]["xquad"]["f1"] >= 0.0
  assert two[0]["zero_shot"] == two[1]["zero_shot"] == one[0]["zero_shot"]
  files = _files(tmp_path / "one" / "predictions")
  assert sorted(files) == ["toy_cls/test-de.jsonl", "toy_cls/test-en.jsonl", "xquad/test-de.json",
                           "xquad/test-en.json"]
  assert _files(tmp_path / "two" / "predictions") == files
  # Programs compiled once per bucket, as many as one process compiles.
  assert two[0]["compilations"] == two[1]["compilations"] == one[0]["compilations"]

  # Each process featurised exactly its round-robin share of every dev and test split, once.
  splits = {"toy_cls/dev/en": 13, "toy_cls/test/en": 13, "toy_cls/test/de": 13, "xquad/dev/en": 9,
            "xquad/test/en": 11, "xquad/test/de": 10}
  for where, n in splits.items():
    shares = [r["shares"][where] for r in two]
    assert [s["num_examples"] for s in shares] == [n, n]
    for p, s in enumerate(shares):
      assert s["examples"] == list(range(p, n, NUM_PROCESSES)), where
      assert s["featurized"] == [len(s["examples"])], (where, s["featurized"])
    assert one[0]["shares"][where]["featurized"] == [n] and one[0]["shares"][where]["examples"] == list(range(n))
