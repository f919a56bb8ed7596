"""scripts/scale_table.py's compiled confirmation: what the compiles found reaches docs/scale.md, survives a
regeneration without `--compile`, is never reused once the cell's inputs change, and a cell that does not
fit says so. Fake compile results here (the real compile is `xtjax plan`'s, tested in tests/train/test_plan.py),
plus one real libtpu compile of a tiny row."""

import importlib.util
import sys
from pathlib import Path

import pytest

GiB = 1024 ** 3
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture(scope="module")
def st():
  spec = importlib.util.spec_from_file_location("scale_table", SCRIPTS / "scale_table.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  yield module
  sys.path.remove(str(SCRIPTS))


@pytest.fixture(scope="module")
def tiny_row(st):
  row = st.row("Tiny", "xlmr-bench-small", "encoder")  # 4 layers of 256: the estimate picks v4-8 (none, 1)
  return _with_program(row, "p0")  # fake lowerings (the real one is test_a_tiny_row_compiles_for_a_v4_slice)


def _with_program(row, program: str):
  """`row` whose train steps all lower to `program`."""
  return {**row, "tasks": {k: {**t, "program": lambda c: program} for k, t in row["tasks"].items()}}


def _fake_compile(calls, overflow_on="v4-8"):
  """A compile that overflows one slice (libtpu's 40 GiB of 32) and needs 1 GiB on the others."""
  def compile_fn(c):
    calls.append((c["slice"], c["remat"], c["accum"]))
    if c["slice"] == overflow_on:
      return {"fits": False, "peak_bytes": 40 * GiB, "error": "RESOURCE_EXHAUSTED"}
    return {"fits": True, "peak_bytes": 1 * GiB, "temp_bytes": GiB // 2, "argument_bytes": GiB // 2,
            "flops": 1e9, "compile_seconds": 3.0, "compile_cpu_seconds": 2.0}
  return compile_fn


def _mnli_line(doc: str, label="Tiny") -> str:
  section = doc.split("### MNLI: estimate against compile")[1].split("###")[0]
  return next(line for line in section.splitlines() if line.startswith(f"| {label} |"))


def test_a_cell_that_does_not_fit_moves_on_and_the_doc_says_so(st, tiny_row, tmp_path):
  assert tiny_row["tasks"]["MNLI"]["cells"]["v4"]["slice"] == "v4-8"
  cache_path, calls = tmp_path / "compiled.json", []
  st.compile_rows([tiny_row], {}, cache_path, tasks=("MNLI",), compile_fn=_fake_compile(calls),
                  log=lambda *a, **k: None, max_tries=6)
  # More accum, then `full` remat; under `full` 40 GiB less the estimated activations still overflows v4-8,
  # so no more accum there: the next slice.
  assert calls == [("v4-8", "none", 1), ("v4-8", "none", 2), ("v4-8", "none", 4), ("v4-8", "none", 8),
                   ("v4-8", "full", 1), ("v4-16", "none", 1)]
  doc = st.markdown([tiny_row], st.compiled.load(cache_path))
  line = _mnli_line(doc)
  assert "v4-8 (full, 1): 40.0 GiB, does not fit; v4-16 (none, 1): 1.0 GiB, fits" in line
  assert "compiled on libtpu" in line and "| 1.0 GiB | 0.5 GiB |" in line
  assert "over the 6 compiled train steps" in doc

  # Regenerating (no --compile) from the saved cache keeps the compiled columns and compiles nothing.
  again = []
  st.compile_rows([tiny_row], st.compiled.load(cache_path), cache_path, tasks=("MNLI",),
                  compile_fn=_fake_compile(again), log=lambda *a, **k: None)
  assert again == []
  out = tmp_path / "scale.md"
  st.write_doc([tiny_row], st.compiled.load(cache_path), out)
  assert _mnli_line(out.read_text()) == line


def test_a_cell_whose_inputs_changed_is_stale_not_reused(st, tiny_row, tmp_path):
  cache_path, calls = tmp_path / "compiled.json", []
  st.compile_rows([tiny_row], {}, cache_path, tasks=("MNLI",), compile_fn=_fake_compile(calls, "none"),
                  log=lambda *a, **k: None)
  cache = st.compiled.load(cache_path)
  assert "1.0 GiB, fits" in _mnli_line(st.markdown([tiny_row], cache))

  changed = {**tiny_row, "tasks": {**tiny_row["tasks"], "MNLI": {**tiny_row["tasks"]["MNLI"], "inputs": "0" * 16}}}
  line = _mnli_line(st.markdown([changed], cache))
  assert "stale: model or train config changed" in line and "fits" not in line

  line = _mnli_line(st.markdown([_with_program(tiny_row, "p1")], cache))  # same configs, another program
  assert "stale: the train step's program (its lowered StableHLO) changed" in line and "fits" not in line

  other = {**tiny_row["tasks"]["MNLI"]["cells"]["v4"], "remat": "full"}
  moved = {**tiny_row, "tasks": {**tiny_row["tasks"], "MNLI": {**tiny_row["tasks"]["MNLI"], "cells": {
      **tiny_row["tasks"]["MNLI"]["cells"], "v4": other}}}}
  line = _mnli_line(st.markdown([moved], cache))
  assert "stale: compiled from v4-8 (none, 1), the estimate now picks v4-8 (full, 1)" in line and "fits" not in line

  again = []  # --compile redoes a stale cell
  st.compile_rows([changed], cache, cache_path, tasks=("MNLI",), compile_fn=_fake_compile(again, "none"),
                  log=lambda *a, **k: None)
  assert again == [("v4-8", "none", 1)] and st.compiled.load(cache_path)[next(iter(cache))]["inputs"] == "0" * 16


def test_libtpu_refusing_an_oversized_program_is_a_no_fit_with_its_size(st, monkeypatch):
  from jax.errors import JaxRuntimeError

  import xtjax.train.plan

  def refuse(*a, **k):
    raise JaxRuntimeError("RESOURCE_EXHAUSTED: XLA:TPU compile permanent error. Ran out of memory in memory space "
                          "hbm. Used 40.12G of 30.75G hbm. Exceeded hbm capacity by 9.37G.")

  monkeypatch.setattr(xtjax.train.plan, "plan", refuse)
  r = st.compiled.compile_train_step(None, "v4-8")
  assert r["fits"] is False and r["peak_bytes"] == pytest.approx(40.12 * GiB)
  # The other form libtpu 0.0.42 uses: temporaries alone, a lower bound of the peak.
  r = st.compiled.oom_result("RESOURCE_EXHAUSTED: Ran out of memory on HBM, the total memory required for HLO "
                             "temporaries (31.89G) exceeds available HBM (30.75G).")
  assert r["fits"] is False and r["peak_bytes"] is None and r["temp_bytes"] == pytest.approx(31.89 * GiB)
  t = {"slice": "v4-8", "remat": "full", "accum": 1, "analytic_activations": GiB, **r}
  assert st.compiled._overflows(t, 0.9 * 32 * GiB)  # 30.9 GiB beyond the activations under full: leave the slice
  assert not st.compiled._overflows({**t, "remat": "none"}, 0.9 * 32 * GiB)  # `full` may still fit

  def broken(*a, **k):
    raise JaxRuntimeError("INTERNAL: something else")

  monkeypatch.setattr(xtjax.train.plan, "plan", broken)
  with pytest.raises(JaxRuntimeError, match="INTERNAL"):
    st.compiled.compile_train_step(None, "v4-8")


def test_a_crashed_compile_is_reported_and_the_next_candidate_tried(st, tiny_row, tmp_path):
  calls = []

  def crash_first(c):
    if not calls:
      calls.append(c["accum"])
      return {"fits": None, "peak_bytes": None, "error": "the compiler's process died (libtpu crashed)"}
    calls.append(c["accum"])
    return _fake_compile([], "none")(c)

  cache_path = tmp_path / "compiled.json"
  st.compile_rows([tiny_row], {}, cache_path, tasks=("MNLI",), compile_fn=crash_first, log=lambda *a, **k: None)
  assert calls == [1, 2]  # same slice: a crash says nothing about memory
  line = _mnli_line(st.markdown([tiny_row], st.compiled.load(cache_path)))
  assert "v4-8 (none, 1): compile crashed; v4-8 (none, 2): 1.0 GiB, fits" in line


def test_resume_goes_on_after_the_last_try_of_a_cell_without_a_fit(st, tiny_row, tmp_path):
  cache_path = tmp_path / "compiled.json"
  crash = lambda c: {"fits": None, "peak_bytes": None, "error": "died"}
  st.compile_rows([tiny_row], {}, cache_path, tasks=("MNLI",), compile_fn=crash, log=lambda *a, **k: None)
  cache = st.compiled.load(cache_path)
  assert "no fit within 4 compiles" in _mnli_line(st.markdown([tiny_row], cache))
  calls = []
  st.compile_rows([tiny_row], cache, cache_path, tasks=("MNLI",), compile_fn=_fake_compile(calls, "none"),
                  log=lambda *a, **k: None)
  assert calls == []  # a fresh entry without a fit is kept unless asked to resume
  st.compile_rows([tiny_row], cache, cache_path, tasks=("MNLI",), compile_fn=_fake_compile(calls, "none"),
                  log=lambda *a, **k: None, resume=True)
  assert calls == [("v4-8", "full", 1)]  # none: 32 examples on 4 devices allow accum 1..8
  line = _mnli_line(st.markdown([tiny_row], st.compiled.load(cache_path)))
  assert "v4-8 (none, 8): compile crashed; v4-8 (full, 1): 1.0 GiB, fits" in line


def test_a_dying_compiler_process_is_a_result_not_the_end_of_the_run(st):
  import os

  r = st.compiled.isolated(os._exit, 3)
  assert r["fits"] is None and "died" in r["error"]


def test_a_cache_that_is_not_the_scripts_own_is_a_one_line_error(st, tmp_path):
  bad = tmp_path / "compiled.json"
  bad.write_text('{"cell": {"peak": 1}}')
  with pytest.raises(SystemExit, match="compiled.json: expected"):
    st.compiled.load(bad)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("libtpu") is None, reason="libtpu is not installed (the `tpu` extra)")
def test_a_tiny_row_compiles_for_a_v4_slice(st, monkeypatch):
  """The real path: the script's config for a cell, compiled by `xtjax plan`'s code with libtpu."""
  monkeypatch.setenv("TPU_WORKER_HOSTNAMES", "localhost")
  monkeypatch.setenv("TPU_ACCELERATOR_TYPE", "v4-8")
  monkeypatch.setenv("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
  cfg = st._config("xlmr-bench-small", "encoder", "MNLI", "dots_saveable", 2)
  assert cfg.optim.grad_accum_steps == 2 and cfg.model.config_overrides["remat"] == "dots_saveable"
  r = st.compiled.isolated(st.compiled.compile_train_step, cfg, "v4-8")  # in a child process, as --compile does
  assert r["fits"] is True and 0 < r["temp_bytes"] < r["peak_bytes"] < 2 * GiB and r["compile_cpu_seconds"] > 0
  # The program a cell is keyed by: lowered here, it is what the child compiled; another remat is another program.
  assert st.compiled.lower_train_step(cfg, "v4-8") == r["program"]
  other = st._config("xlmr-bench-small", "encoder", "MNLI", "none", 2)
  assert st.compiled.lower_train_step(other, "v4-8") != r["program"]


def test_put_keeps_the_entries_another_run_wrote_meanwhile(st, tmp_path):
  path = tmp_path / "compiled.json"
  st.compiled.save(path, {"a": {"tries": []}})
  st.compiled.put(path, "b", {"tries": []})  # a run whose in-memory cache predates "a" adds only its cell
  assert sorted(st.compiled.load(path)) == ["a", "b"]
