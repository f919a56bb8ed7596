"""`xtjax plan` and libtpu: a plan beside another libtpu process, without libtpu, and `--memory-only`
(which needs no libtpu). Each plan runs as its own process, as a user would start it."""

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ["model.config_overrides={num_layers: 2, hidden_size: 32, num_heads: 4, intermediate_size: 64, "
        "vocab_size: 64, max_position_embeddings: 40}", "features.max_length=16", "batch_size=16",
        "eval_batch_size=8"]
HAS_LIBTPU = importlib.util.find_spec("libtpu") is not None
# Runs the CLI with `import libtpu` failing, as it does where the `tpu` extra is not installed.
WITHOUT_LIBTPU = "import sys; sys.modules['libtpu'] = None\nfrom xtjax.cli.main import main\nsys.exit(main(sys.argv[1:]))"
# Loads libtpu the way any TPU program does (taking its /tmp/libtpu_lockfile), then waits to be killed.
HOLD_LIBTPU = textwrap.dedent("""\
    from jax.experimental import topologies
    topologies.get_topology_desc(platform="tpu", topology_name="v4:2x2x1", chip_config_name="megacore",
                                 chips_per_host_bounds=(2, 2, 1), num_slices=1)
    print("holding libtpu", flush=True)
    import time; time.sleep(600)
    """)


def _env(**extra) -> dict:
  env = {k: v for k, v in os.environ.items()
         if k not in ("ALLOW_MULTIPLE_LIBTPU_LOAD", "TPU_LIBRARY_PATH", "XLA_FLAGS", "JAX_PLATFORMS")}
  return dict(env, PYTHONPATH=str(ROOT), TPU_WORKER_HOSTNAMES="localhost", TPU_ACCELERATOR_TYPE="v4-8", **extra)


def _plan(*args, code=None) -> subprocess.CompletedProcess:
  prog = ["-c", code] if code else ["-m", "xtjax.cli.main"]
  return subprocess.run([sys.executable, *prog, *([] if code else []), "plan", *args], env=_env(), cwd=ROOT,
                        text=True, capture_output=True, timeout=600)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_LIBTPU, reason="libtpu is not installed (the `tpu` extra)")
def test_a_plan_compiles_while_another_process_holds_libtpu():
  """Another libtpu process (an earlier plan, a test, a trainer) holds libtpu's lock file: the plan
  still compiles for the TPU slice, and nobody is told to `sudo rm /tmp/libtpu_lockfile`."""
  holder = subprocess.Popen([sys.executable, "-c", HOLD_LIBTPU], env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  try:
    first = holder.stdout.readline()
    if "holding libtpu" not in first:  # someone else holds the lock: the situation under test all the same
      assert "libtpu_lockfile" in first + holder.stdout.read(), first
    r = _plan("--preset", "xlmr-bench-small", "--topology", "v4-8", "--no-eval", *TINY)
  finally:
    holder.kill()
    holder.wait()
  assert r.returncode == 0, r.stderr[-2000:]
  assert "train_step: compiled" in r.stdout and "v4-8: 4 devices" in r.stdout
  assert "sudo rm" not in r.stdout + r.stderr


def test_without_libtpu_a_compile_names_the_extra_in_one_line():
  r = _plan("--preset", "xlmr-bench-small", "--topology", "v4-8", "--no-eval", *TINY, code=WITHOUT_LIBTPU)
  assert r.returncode == 2 and r.stdout == ""
  assert r.stderr == ("xtjax plan: error: --topology v4-8: compiling for a TPU slice needs libtpu: install the tpu "
                      "extra (pip install 'xtjax[tpu]'); --memory-only needs no libtpu\n")


def test_memory_only_needs_no_libtpu():
  """The slice table gives the device count and HBM; CPU devices stand in for the chips."""
  r = _plan("--preset", "xlmr-large", "--topology", "v4-32", "--memory-only", code=WITHOUT_LIBTPU)
  assert r.returncode == 0, r.stderr
  assert "v4-32: 16 devices in 1 slice(s), mesh {'data': 1, 'fsdp': 16, 'tensor': 1}" in r.stdout
  assert "HBM                            32.00 GiB  -> fits without activations" in r.stdout


@pytest.mark.slow
@pytest.mark.skipif(not HAS_LIBTPU, reason="libtpu is not installed (the `tpu` extra)")
def test_a_step_larger_than_hbm_is_a_does_not_fit_answer():
  """libtpu refuses a tiny model's step at 16384 x 512 tokens (its attention scores alone exceed a v4 chip's HBM):
  `plan` answers with libtpu's figures and exits 0, in text and in --json."""
  big = [TINY[0].replace("max_position_embeddings: 40", "max_position_embeddings: 520"),
         "features.max_length=512", "batch_size=16384"]
  r = _plan("--preset", "xlmr-bench-small", "--topology", "v4-8", "--no-eval", "--json", *big)
  assert r.returncode == 0, r.stderr[-2000:]
  import json

  out = json.loads(r.stdout)
  assert out["fits"] is False and out["overflow"]["name"] == "train_step" and out["programs"] == []
  assert out["overflow"]["needed_bytes"] > out["overflow"]["available_bytes"] > 30 * 2 ** 30
  assert "RESOURCE_EXHAUSTED" in out["overflow"]["message"]
