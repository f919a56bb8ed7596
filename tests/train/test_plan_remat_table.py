"""`xtjax plan --remat-table` shows each policy's XLA FLOPs next to its memory, so a policy that
recomputes as much as `full` is visible (the issue-23 table had three of five policies `full` in disguise)."""

import json

import pytest

from xtjax.cli.main import main

# A tiny stacked (scanned) XLM-R step on 8 fake CPU devices, bf16 compute (the preset run's dtype).
TINY = ["model.config_overrides={num_layers: 4, scan_layers: true, hidden_size: 128, num_heads: 2, "
        "intermediate_size: 256, vocab_size: 64, max_position_embeddings: 40}", "features.max_length=16",
        "batch_size=16", "eval_batch_size=8", "optim.grad_accum_steps=1"]
REMATS = "none,full,minimal_with_context"


def _table(capsys, *extra):
  assert main(["plan", "--preset", "xlmr-bench-small", "--topology", "cpu:8", "--remat-table", "--remats", REMATS,
               *extra, *TINY]) == 0
  return capsys.readouterr().out


@pytest.mark.slow
def test_the_remat_table_shows_which_policies_recompute_the_matmuls(capsys):
  rows = {row["remat"]: row for row in json.loads(_table(capsys, "--json"))["policies"]}
  assert list(rows) == REMATS.split(",")
  none, full, mwc = rows["none"], rows["full"], rows["minimal_with_context"]
  assert full["flops"] > none["flops"] and full["recompute_of_full"] == 1 and none["recompute_of_full"] == 0
  assert mwc["recompute_of_full"] < 0.25 and mwc["flops"] < full["flops"]  # scores and norms rerun, no matmul
  assert full["temp_bytes"] < mwc["temp_bytes"] < none["temp_bytes"]


@pytest.mark.slow
def test_the_remat_table_prints_flops_next_to_memory(capsys):
  out = _table(capsys)
  header = next(line for line in out.splitlines() if "temporaries" in line)
  assert header.index("peak/device") < header.index("XLA FLOPs") < header.index("of full recompute")
  full = next(line for line in out.splitlines() if line.split()[:1] == ["full"])
  assert "100%" in full and "a scanned stack's body counted once" in out


def test_an_unknown_policy_is_a_one_line_error(capsys):
  assert main(["plan", "--preset", "xlmr-bench-small", "--topology", "cpu:8", "--remat-table",
               "--remats", "none,minimal_with_contxt", *TINY]) != 0
  err = capsys.readouterr().err
  assert "minimal_with_contxt" in err and "minimal_with_context" in err and "Traceback" not in err
