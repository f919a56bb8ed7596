"""A gs:// run directory whose bucket cannot be used fails at once with one line naming the path and the
cause, before any model is built and without importing TensorFlow (whose gfile retries for minutes)."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

from xtjax import io_utils
from xtjax.cli.main import main

TESTS = Path(__file__).resolve().parent

RUNNER = """
import sys
sys.path.insert(0, sys.argv[1])
import pytest
from fake_gcs import fake_gcs
from xtjax.cli.main import main
from xtjax.train import setup

def never(*args, **kwargs):
  raise AssertionError("a model was built")

setup.build_model = setup.encoder_start = never
with fake_gcs(__import__("pathlib").Path(sys.argv[2]), pytest.MonkeyPatch(), unreachable=True):
  code = main(["train", sys.argv[3], "--workdir", "gs://bucket/runs/x"])
print("tensorflow imported:", "tensorflow" in sys.modules, file=sys.stderr)
sys.exit(code)
"""


def _config(tmp_path):
  cfg = tmp_path / "c.yaml"
  cfg.write_text(yaml.safe_dump({"model": {"preset": "xlmr-base"}, "tasks": [{"name": "xnli"}]}))
  return cfg


def test_an_unreachable_bucket_is_one_line_before_anything_is_built(tmp_path):
  env = {k: v for k, v in os.environ.items() if not k.startswith("XTJAX_")}
  r = subprocess.run([sys.executable, "-c", RUNNER, str(TESTS), str(tmp_path / "store"), str(_config(tmp_path))],
                     env=env, capture_output=True, text=True, timeout=300)
  lines = r.stderr.strip().splitlines()
  assert r.returncode == 2, r.stderr
  assert lines == ["xtjax train: error: gs://bucket/runs/x: cannot reach Google Cloud Storage (ConnectionError: "
                   "HTTPSConnectionPool(host='storage.googleapis.com', port=443): Could not resolve host)",
                   "tensorflow imported: False"], r.stderr
  assert not (tmp_path / "store").exists()


def test_missing_credentials_are_one_line(tmp_path, monkeypatch, capsys):
  """The real google-cloud-storage client, with Application Default Credentials pointing nowhere."""
  monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-such-key.json"))
  monkeypatch.setattr(io_utils, "missing_gcs_clients", lambda: ())
  io_utils.gcs_client.cache_clear()
  io_utils.bucket_problem.cache_clear()
  try:
    assert main(["train", str(_config(tmp_path)), "--workdir", "gs://some-bucket/runs/x"]) == 2
  finally:
    io_utils.gcs_client.cache_clear()
    io_utils.bucket_problem.cache_clear()
  assert capsys.readouterr().err == (
      "xtjax train: error: gs://some-bucket/runs/x: no Google Cloud credentials (run `gcloud auth "
      "application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS)\n")
