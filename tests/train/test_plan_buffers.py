"""`xtjax plan --buffers`: the largest temporaries of the compiled train step, from the compiler's own buffer
assignment; and what it found for mT5's text-to-text step: FSDP gathered the whole [D, V] LM head and held
its whole f32 gradient, which the vocabulary-parallel head (`rules.vocab_parallel`) no longer does."""

import contextlib
import io
import json

import jax
import pytest

from xtjax.cli.main import main
from xtjax.cli.plan_cmd import load_plan_config
import xtjax.models.t5 as t5
from xtjax.parallel import buffers, topology
from xtjax.train.plan import plan

D, V = 64, 250112  # mT5's vocabulary (divisible by 8) on a 2+2-layer d_model-64 model
TINY_T5 = ["tasks=[{name: mnli_t2t}]", "batch_size=16", "features.max_length=32", "features.max_target_length=8",
           "mesh.data=1", "mesh.fsdp=-1", "optim.optimizer=adafactor", "optim.weight_decay=0",
           f"model.config_overrides={{num_layers: 2, num_decoder_layers: 2, d_model: {D}, d_ff: 128, num_heads: 4, "
           "d_kv: 16}"]


def _slots(monkeypatch=None, gathered=False):
  if gathered:  # FSDP's default: the head's weight gathered whole for the logits
    monkeypatch.setattr(t5, "vocab_parallel", lambda x, w, dim: (x, w, lambda logits: logits))
  r = plan(load_plan_config(None, TINY_T5, "mt5-small"), topology.parse("cpu:8"), compile_eval=False, buffers=400)
  train = r["programs"][0]
  return train["temp_bytes"], [buffers.Slot(**s) for s in train["largest_temporaries"]]


def _whole_head(slots):
  """Slots holding an array as large as the whole [D, V] head (any dtype)."""
  return [s for s in slots if str(D) in s.shape and str(V) in s.shape]


@pytest.mark.slow
def test_the_lm_head_is_vocabulary_parallel_under_fsdp(monkeypatch):
  temps, slots = _slots()
  assert slots and all(s.bytes > 0 for s in slots) and slots == sorted(slots, key=lambda s: -s.bytes)
  assert not _whole_head(slots), _whole_head(slots)
  assert any(str(V // 8) in s.shape for s in slots)  # each device computes its eighth of the vocabulary
  gathered_temps, gathered = _slots(monkeypatch, gathered=True)
  whole = _whole_head(gathered)
  assert whole and any("dot_general" in s.op for s in whole)  # the gathered weight and its whole gradient
  # What the whole-head buffers cost is gone from the temporaries (the f32 gradient alone is D x V x 4 bytes).
  assert gathered_temps - temps >= D * V * 4


def test_plan_buffers_prints_the_largest_temporaries_with_their_operations(capsys):
  assert main(["plan", "--preset", "mt5-small", "--topology", "cpu:8", "--no-eval", "--buffers", "3", *TINY_T5]) == 0
  out = capsys.readouterr().out
  lines = out[out.index("largest temporaries of train_step"):].splitlines()[1:4]
  assert len(lines) == 3 and all(" GiB  " in ln and "[" in ln for ln in lines), lines
  sizes = [float(ln.split()[0]) for ln in lines]
  assert sizes == sorted(sizes, reverse=True)
  buf = io.StringIO()
  with contextlib.redirect_stdout(buf):
    assert main(["plan", "--preset", "mt5-small", "--topology", "cpu:8", "--no-eval", "--buffers", "2", "--json",
                 *TINY_T5]) == 0
  found = json.loads(buf.getvalue())["programs"][0]["largest_temporaries"]
  assert len(found) == 2 and {"bytes", "shape", "op", "values"} <= found[0].keys()


def test_a_refused_compile_names_what_it_could_not_fit(monkeypatch, capsys):
  """libtpu refuses a program larger than HBM after assigning its buffers: `--buffers` shows them beside the
  refusal (here XLA:CPU compiles, dumping its assignment, and the refusal is libtpu's message)."""
  from jax.errors import JaxRuntimeError

  compile_ = jax.stages.Lowered.compile

  def refuse(self, *a, **k):
    compile_(self, *a, **k)
    raise JaxRuntimeError("RESOURCE_EXHAUSTED: Ran out of memory on HBM, the total memory required for HLO "
                          "temporaries (51.23G) exceeds available HBM (30.75G).")

  monkeypatch.setattr(jax.stages.Lowered, "compile", refuse)
  assert main(["plan", "--preset", "mt5-small", "--topology", "cpu:8", "--no-eval", "--buffers", "3", *TINY_T5]) == 0
  out = capsys.readouterr().out
  assert "does not fit: train_step needs 51.23 GiB of temporaries against 30.75 GiB HBM per device" in out
  lines = out[out.index("largest temporaries of train_step (of 51.23 GiB"):].splitlines()[1:4]
  assert len(lines) == 3 and all(" GiB  " in ln and "[" in ln for ln in lines), lines


@pytest.mark.parametrize("argv, message", [(["--buffers", "-1"], "a positive count"),
                                           (["--buffers", "3", "--memory-only"], "needs a compile")])
def test_bad_buffers_requests_are_one_line(argv, message, capsys):
  assert main(["plan", "--preset", "mt5-small", "--topology", "cpu:8", *argv, *TINY_T5]) != 0
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and message in err[0]


def test_the_assignment_parser_groups_values_by_offset():
  text = "\n".join([
      "allocation 0: size 64, parameter 0, shape |f32[16]| at ShapeIndex {}:",
      " value: <1 param.0 @0> (size=64,offset=0): f32[16]{0}",
      "allocation 1: size 4096, preallocated-temp:",
      " value: <2 fusion.1 @0> (size=4096,offset=0): f32[32,32]{1,0:T(8,128)}",
      " value: <3 copy.2{0} @0> (size=1024,offset=0): bf16[16,32]{1,0}",
      " value: <4 dot.3 @0> (size=2048,offset=2048): f32[16,32]{1,0}",
      "allocation 2: size 128, color 3, preallocated-temp:",
      " value: <5 other.4 @0> (size=128,offset=0): f32[32]{0}"])
  hlo = ('  %fusion.1 = f32[32,32]{1,0} fusion(%a), kind=kLoop, metadata={op_name="jit(step)/transpose(jvp())/dot"}\n'
         '  ROOT %dot.3 = f32[16,32]{1,0} dot(%b, %c), metadata={op_name="jit(step)/state.params[\\\'w\\\'].value"}\n')
  found = buffers.slots(buffers.temp_values(text), buffers.op_names(hlo))
  assert found == [buffers.Slot(4096, "f32[32,32]", "transpose(jvp())/dot", 2),
                   buffers.Slot(2048, "f32[16,32]", "state.params['w'].value", 1)]


TINY_LORA = ["lora={targets: ['encoder/layers/\\d+/(attention/(q|k|v|o)|mlp/(gate|up|down))/kernel'], rank: 4, alpha: 8}",
             "model.config_overrides={num_layers: 16, hidden_size: 256, intermediate_size: 1024, num_heads: 4, "
             "num_kv_heads: 2, vocab_size: 512, remat: full}", "batch_size=16"]


@pytest.mark.slow
def test_remat_full_keeps_no_stacked_copy_of_the_layers_weights():
  """Scanned layers under `remat: full` keep each layer's input, not its weights: the weights' per-layer sharding
  constraint runs inside the rematerialised function (`models.scan._scan`). Before, the constrained weights
  were residuals of the scan, stacked for the backward pass: f32 [16, 1024, 32] slots here (the MLP weights'
  shards on fsdp=8), bf16 [80, 512, 28672] ones (2.19 GiB each) for LoRA on Llama-3.1-70B on v4-32."""
  r = plan(load_plan_config(None, TINY_LORA, "llama-3.1-8b"), topology.parse("cpu:8"), compile_eval=False,
           buffers=1000)
  shards = {f"{dt}[16,{a},{b}]" for dt in ("f32", "bf16") for a, b in ((256 // 8, 1024), (1024, 256 // 8))}
  found = [s["shape"] for s in r["programs"][0]["largest_temporaries"]]
  assert found and not shards & set(found), sorted(shards & set(found))


def test_buffers_are_dumped_when_the_persistent_cache_already_holds_the_program(tmp_path):
  """The cache key leaves dump options out, and jax decides once per process whether the cache is used: a
  program compiled (and cached) before must still be compiled, and dumped, for `--buffers`."""
  from jax.experimental.compilation_cache import compilation_cache
  saved = {k: getattr(jax.config, k) for k in ("jax_compilation_cache_dir", "jax_enable_compilation_cache",
                                                 "jax_persistent_cache_min_compile_time_secs")}
  try:
    jax.config.update("jax_compilation_cache_dir", str(tmp_path))
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    compilation_cache.reset_cache()
    jax.jit(lambda x: x * 2).lower(1.0).compile()  # the process now uses the cache (decided on its first compile)
    cfg = load_plan_config(None, TINY_T5, "mt5-small")
    for _ in range(2):  # the first compile writes the cache, the second would read it and dump nothing
      r = plan(cfg, topology.parse("cpu:8"), compile_eval=False, buffers=3)
      assert len(r["programs"][0]["largest_temporaries"]) == 3
  finally:
    for k, v in saved.items():
      jax.config.update(k, v)
    compilation_cache.reset_cache()
