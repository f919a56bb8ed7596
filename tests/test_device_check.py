"""scripts/device_check.py: the accelerator check's CPU smoke mode, run as a user runs it, writes every piece
of issue 24's check (xtjax, PyTorch and their ratio, or an explicit skip reason) to its JSON and markdown
table, so the script cannot rot between sessions that are lent a GPU; the time budget skips what no longer
fits with a line, and a missing module or a failing piece is one line, not a traceback."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "device_check.py"

# The metrics of every piece the check reports; the numerical check has no PyTorch side.
EXPECTED = {
    "xlmr_train_384": ["examples/s", "step ms (p50)", "MFU"],
    "xlmr_train_128": ["examples/s", "step ms (p50)", "MFU"],
    "numerics": ["max relative loss difference (tolerance 0.02)"],
    "xlmr_infer": ["latency p50 ms", "latency p99 ms", "examples/s"],
    "mt5_train": ["examples/s", "step ms (p50)", "MFU"],
    "llama_lora": ["examples/s", "step ms (p50)", "MFU"],
    "llama_generate": ["new tokens/s"],
}
HEADER = ("| check | shape | metric | xtjax | PyTorch | xtjax / PyTorch | xtjax step GiB | xtjax peak GiB "
          "| PyTorch peak GiB |")


@pytest.fixture(scope="module")
def dc():
  spec = importlib.util.spec_from_file_location("device_check", SCRIPT)
  module = importlib.util.module_from_spec(spec)
  sys.modules["device_check"] = module  # its dataclasses resolve their annotations through it
  spec.loader.exec_module(module)
  yield module
  sys.modules.pop("device_check")
  sys.path.remove(str(ROOT))


def _finite(x) -> bool:
  return isinstance(x, float) and x == x and abs(x) != float("inf")


@pytest.mark.slow
def test_smoke_run_writes_every_piece_with_its_numbers_and_ratio(tmp_path):
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
  proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(tmp_path)], env=env,
                        capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "Traceback" not in proc.stdout + proc.stderr
  report = json.loads((tmp_path / "device_check.json").read_text())
  assert report["mode"] == "smoke"
  got = {}
  for r in report["rows"]:
    got.setdefault(r["piece"], []).append(r["metric"])
  for piece, metrics in EXPECTED.items():  # numbers, or a reason the table states
    assert got.get(piece) == metrics or report["skipped"].get(piece, "").startswith("missing: "), (piece, report)
  assert not any(why.startswith("failed") for why in report["skipped"].values()), report["skipped"]
  for r in report["rows"]:
    assert _finite(r["xtjax"]), r
    if r["piece"] == "numerics":  # CPU against CPU here: the same program, the same 20 losses
      assert r["passed"] and r["xtjax"] == 0.0 and len(r["losses"]) == 20 and r["losses"] == r["losses_cpu"]
      assert all(map(_finite, r["losses"]))
    else:
      assert r["torch"] > 0 and r["ratio"] == pytest.approx(r["xtjax"] / r["torch"]), r
  for r in report["rows"]:
    if r["metric"] == "MFU":  # against a stated peak, the same model FLOPs on both sides
      assert 0 < r["xtjax"] < 1 and r["peak_flops_per_s"] > 0 and r["peak_source"], r
    if r["metric"] == "examples/s" and r["piece"] != "xlmr_infer":
      assert r["xtjax_program_bytes"] > 0, r
  assert [r["torch_attention"] for r in report["rows"] if "torch_attention" in r] == ["sdpa", "sdpa"]
  env_ = report["environment"]
  assert {"date", "device", "platform", "jax", "torch", "transformers", "python"} <= env_.keys()

  table = (tmp_path / "device_check.md").read_text().splitlines()
  assert table[0].startswith("Device: ") and env_["jax"] in table[0] and env_["torch"] in table[0]
  assert HEADER in table
  rows = [line for line in table[table.index(HEADER) + 2:] if line.startswith("| ")]
  assert len(rows) == len(report["rows"]) + len(report["skipped"])
  assert all(line.count("|") == HEADER.count("|") for line in rows), rows  # no cell breaks the table
  ratio_cells = [line.split(" | ")[5] for line in rows]
  assert sum(c.endswith("x") or c.endswith("x (lower is better)") for c in ratio_cells) == len(report["rows"]) - (
      "numerics" in got)


def test_budget_skips_each_piece_that_does_not_fit_with_a_line(dc, tmp_path, capsys):
  assert dc.main(["--budget-s", "1", "--out", str(tmp_path)]) == 0  # full shapes: nothing fits in 1 s
  out = capsys.readouterr().out
  report = json.loads((tmp_path / "device_check.json").read_text())
  assert report["rows"] == [] and set(report["skipped"]) == set(EXPECTED)
  assert sum(line.startswith("skip ") for line in out.splitlines()) == len(EXPECTED)
  md = (tmp_path / "device_check.md").read_text()
  assert md.count("skipped: time budget") == len(EXPECTED)


def test_the_full_run_keeps_to_six_minutes(dc):
  """The default budget and each piece's H100 estimate leave room for a second try in the device time."""
  assert sum(v for k, v in dc.FULL.estimates.items() if k in dc.PIECES) <= dc.DEFAULT_BUDGET_S <= 360


def test_a_missing_module_or_failing_piece_is_one_line_and_the_others_still_run(dc, tmp_path, capsys, monkeypatch):
  def broken(shapes, state):
    raise RuntimeError("RESOURCE_EXHAUSTED: out of memory\nlong XLA dump")

  def missing(shapes, state):
    raise ModuleNotFoundError("No module named 'torch'")

  monkeypatch.setattr(dc, "PIECES", {"xlmr_train_384": broken, "mt5_train": missing, "numerics": lambda s, st: [
      dc._row("stub", "1 x 1", "m", 1.0, 2.0)]})
  assert dc.main(["--smoke", "--out", str(tmp_path)]) == 0
  out = capsys.readouterr().out
  assert "xlmr_train_384 failed: RuntimeError: RESOURCE_EXHAUSTED: out of memory\n" in out
  assert "skip mt5_train: missing No module named 'torch'\n" in out
  assert "Traceback" not in out and "long XLA dump" not in out
  report = json.loads((tmp_path / "device_check.json").read_text())
  assert report["skipped"] == {"xlmr_train_384": "failed: RuntimeError", "mt5_train": "missing: No module named 'torch'"}
  assert [r["ratio"] for r in report["rows"]] == [0.5]
  assert "| mt5_train | - | skipped: missing: No module named 'torch' |" in (tmp_path / "device_check.md").read_text()
