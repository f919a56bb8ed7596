"""scripts/device_check.py: the accelerator check's CPU smoke mode writes every row (xtjax, PyTorch and the
ratio) to its JSON and markdown table, so the script cannot rot between sessions that have a GPU; the time
budget skips what no longer fits with a line, and a failing piece is one line, not a traceback."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "device_check.py"

# (piece, metric) of every row the check reports; the numerical check has no PyTorch side.
EXPECTED = {
    "xlmr_train_384": ["examples/s", "step ms (p50)", "MFU"],
    "xlmr_train_128": ["examples/s", "step ms (p50)", "MFU"],
    "numerics": ["max |loss - loss_cpu| / loss_cpu (tolerance 0.02)"],
    "xlmr_infer": ["latency p50 ms", "latency p99 ms", "examples/s"],
    "mt5_train": ["examples/s", "step ms (p50)", "MFU"],
    "llama_lora": ["examples/s", "step ms (p50)", "MFU"],
    "llama_generate": ["new tokens/s"],
}


@pytest.fixture(scope="module")
def dc():
  spec = importlib.util.spec_from_file_location("device_check", SCRIPT)
  module = importlib.util.module_from_spec(spec)
  sys.modules["device_check"] = module  # its dataclasses resolve their annotations through it
  spec.loader.exec_module(module)
  yield module
  sys.modules.pop("device_check")
  sys.path.remove(str(SCRIPT.parents[1]))


@pytest.mark.slow
def test_smoke_writes_every_row_with_its_ratio(dc, tmp_path, capsys):
  assert dc.main(["--smoke", "--out", str(tmp_path)]) == 0
  report = json.loads((tmp_path / "device_check.json").read_text())
  assert report["skipped"] == {}, capsys.readouterr().out
  got = {}
  for r in report["rows"]:
    got.setdefault(r["piece"], []).append(r["metric"])
  assert got == EXPECTED
  for r in report["rows"]:
    assert r["xtjax"] is not None and r["xtjax"] == r["xtjax"], r
    if r["piece"] == "numerics":  # CPU against CPU here: the same program, the same losses
      assert r["passed"] and r["xtjax"] == 0.0 and len(r["losses"]) == 20
    else:
      assert r["torch"] > 0 and r["ratio"] == pytest.approx(r["xtjax"] / r["torch"]), r
  train = [r for r in report["rows"] if r["metric"] == "examples/s" and r["piece"] != "xlmr_infer"]
  assert all(r["xtjax_program_bytes"] > 0 for r in train)
  env = report["environment"]
  assert {"date", "device", "jax", "torch", "transformers", "python"} <= env.keys()
  table = (tmp_path / "device_check.md").read_text().splitlines()
  assert table[0].startswith("Device: ") and env["jax"] in table[0] and env["torch"] in table[0]
  rows = [line for line in table if line.startswith("| ") and not line.startswith("| check")]
  assert len(rows) == sum(map(len, EXPECTED.values()))
  assert sum("x |" in line or "x (lower is better) |" in line for line in rows) == len(rows) - 1  # ratios


def test_budget_skips_each_piece_that_does_not_fit_with_a_line(dc, tmp_path, capsys):
  assert dc.main(["--budget-s", "1", "--out", str(tmp_path)]) == 0  # full shapes: nothing fits in 1 s
  out = capsys.readouterr().out
  report = json.loads((tmp_path / "device_check.json").read_text())
  assert report["rows"] == [] and set(report["skipped"]) == set(EXPECTED)
  assert sum(line.startswith("skip ") for line in out.splitlines()) == len(EXPECTED)
  md = (tmp_path / "device_check.md").read_text()
  assert md.count("skipped: time budget") == len(EXPECTED)


def test_a_failing_piece_is_one_line_and_the_others_still_run(dc, tmp_path, capsys, monkeypatch):
  def broken(shapes, state):
    raise RuntimeError("RESOURCE_EXHAUSTED: out of memory\nlong XLA dump")

  monkeypatch.setattr(dc, "PIECES", {"xlmr_train_384": broken, "numerics": lambda s, st: [
      dc._row("stub", "1 x 1", "m", 1.0, 2.0)]})
  assert dc.main(["--smoke", "--out", str(tmp_path)]) == 0
  out = capsys.readouterr().out
  assert "xlmr_train_384 failed: RuntimeError: RESOURCE_EXHAUSTED: out of memory\n" in out
  assert "Traceback" not in out and "long XLA dump" not in out
  report = json.loads((tmp_path / "device_check.json").read_text())
  assert report["skipped"] == {"xlmr_train_384": "failed: RuntimeError"}
  assert [r["ratio"] for r in report["rows"]] == [0.5]
