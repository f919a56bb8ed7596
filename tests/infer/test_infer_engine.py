"""The inference engine computes what the training eval step computes, and compiles once per bucket."""

import json

import jax
import numpy as np
import pytest

from xtjax.cli.main import main
from xtjax.evaluation.buckets import Buckets
from xtjax.infer.engine import InferenceEngine
from xtjax.models.loading import load_pretrained
from xtjax.parallel.mesh import MeshConfig, make_mesh
from xtjax.evaluation.programs import head_fn
from fixtures import MULTITASK_HEADS

BUCKETS = Buckets(batch_sizes=(2, 8), lengths=(16, 32))


@pytest.fixture(scope="module")
def tiny_run(tiny_multitask_run):
  mesh = make_mesh(MeshConfig(data=2, devices=2))
  engine = InferenceEngine.from_run(tiny_multitask_run["run"], mesh=mesh, buckets=BUCKETS)
  return dict(tiny_multitask_run, engine=engine)


def _inputs(rng, shape, vocab, pad, min_len=3):
  ids = rng.integers(5, vocab, shape).astype(np.int32)
  lens = rng.integers(min_len, shape[-1] + 1, shape[:-1])
  mask = (np.arange(shape[-1]) < lens[..., None]).astype(np.int32)
  return {"input_ids": np.where(mask > 0, ids, pad).astype(np.int32), "attention_mask": mask}


def test_run_heads_are_read_from_config_and_checkpoint(tiny_run):
  engine = tiny_run["engine"]
  assert {k: (h.type, h.num_labels) for k, h in engine.heads.items()} == \
      {"xnli": ("classification", 3), "panx": ("tagging", 7), "xquad": ("span", 2), "xcopa": ("multiple_choice", 2),
       "toy_cls": ("classification", 2)}
  # Restored straight onto the engine's mesh.
  leaf = jax.tree.leaves(engine.params)[0]
  assert leaf.sharding.mesh.shape == {"data": 2, "fsdp": 1, "tensor": 1}


@pytest.mark.parametrize("task", sorted(set(MULTITASK_HEADS) - {"toy_cls"}))
def test_predict_equals_eval_step(tiny_run, task):
  rng = np.random.default_rng(0)
  shape = (3, 2, 20) if task == "xcopa" else (3, 20)
  inputs = _inputs(rng, shape, tiny_run["vocab"], tiny_run["pad"])
  got = tiny_run["engine"].predict(task, inputs)
  eval_step = jax.jit(head_fn(tiny_run["graphdef"], task))
  want = eval_step(tiny_run["params"], dict(inputs, example_mask=np.ones(3, np.int32)))
  got, want = jax.tree.leaves(got), [np.asarray(x) for x in jax.tree.leaves(want)]
  assert [g.shape for g in got] == [w.shape for w in want]
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_no_recompilation_inside_a_bucket(tiny_run):
  engine, rng = tiny_run["engine"], np.random.default_rng(1)
  vocab, pad = tiny_run["vocab"], tiny_run["pad"]
  engine.predict("xnli", _inputs(rng, (3, 20), vocab, pad, min_len=17))  # bucket (8, 32), maybe compiled above
  before = engine.compilations
  for rows, width in ((5, 24), (8, 32), (2, 30), (7, 18)):  # all attend past 16: length bucket 32
    inputs = _inputs(rng, (rows, width), vocab, pad, min_len=17)
    engine.predict("xnli", inputs)
  # (2, 30) went to batch bucket 2: exactly one new program.
  assert engine.compilations == before + 1
  n = engine.compilations
  for rows, width in ((6, 12), (8, 16), (4, 10)):
    engine.predict("xnli", _inputs(rng, (rows, width), vocab, pad))
  assert engine.compilations == n + 1  # the new length bucket 16, once
  out = engine.predict("xnli", _inputs(rng, (11, 16), vocab, pad))  # 8 + 3 rows: chunks in known buckets
  assert out.shape == (11, 3) and engine.compilations == n + 1
  assert engine.stats.calls >= 9


def test_predict_command_on_a_run(tiny_run, tmp_path, capsys):
  out = tmp_path / "test-de.jsonl"
  argv = ["predict", "--checkpoint", str(tiny_run["run"]), "--task", "toy_cls", "--language", "de", "--out", str(out),
          "--batch-sizes", "8", "--seq-lens", "32", "--devices", "1", "--score"]
  assert main(argv) == 0
  predictions = [json.loads(line) for line in out.read_text().splitlines()]
  assert len(predictions) == 12 and set(predictions) <= {0, 1}
  printed = capsys.readouterr().out
  assert "predicted 12 toy_cls examples (test, de)" in printed and '"accuracy"' in printed


def test_embedding_matches_embed_sentences(tiny_hf):
  from fixtures import CORPUS

  from xtjax.models.embed import embed_sentences

  hf = tiny_hf("xlm-roberta")
  engine = InferenceEngine.from_model(hf, mesh=MeshConfig(devices=1))
  got = engine.embed_sentences(CORPUS, layer=1, pooling="mean", max_length=64)
  want, _ = embed_sentences(load_pretrained(hf), CORPUS, layer=1, pooling="mean", max_length=64)
  assert got.shape == want.shape == (len(CORPUS), 32)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  assert engine.compilations == 1


def test_generate_matches_models_generate(tmp_path):
  from t5_fixtures import PROMPTS, make_tiny_t5

  from xtjax.models.generate import generate

  folder = make_tiny_t5(tmp_path / "mt5", "mt5")
  engine = InferenceEngine.from_model(folder, mesh=MeshConfig(devices=1), buckets=Buckets((8,), (64,)))
  ids = engine.tokenizer(PROMPTS)["input_ids"]
  width = max(len(x) for x in ids)
  tok = np.zeros((len(ids), width), np.int32)
  mask = np.zeros_like(tok)
  for r, x in enumerate(ids):
    tok[r, :len(x)], mask[r, :len(x)] = x, 1
  got = engine.generate(tok, mask, max_new_tokens=6)
  want = generate((engine.graphdef, engine.params), tok, mask, max_new_tokens=6)
  np.testing.assert_array_equal(got.sequences, np.asarray(want.sequences))
  np.testing.assert_array_equal(got.lengths, np.asarray(want.lengths))
  assert engine.compilations == 1
  engine.generate(tok[:2], mask[:2], max_new_tokens=6)
  assert engine.compilations == 1


def test_persistent_cache_makes_a_second_engine_start_warm(tiny_hf, tmp_path):
  from jax._src import compilation_cache

  old = (jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs,
         jax.config.jax_persistent_cache_min_entry_size_bytes)
  try:
    kw = dict(mesh=MeshConfig(devices=1), buckets=Buckets((2,), (16,)), compilation_cache_dir=tmp_path / "xla")
    first = InferenceEngine.from_model(tiny_hf("xlm-roberta"), **kw)
    first.warmup(None)
    assert first.compilations == 1 and first.stats.cache_hits == 0
    second = InferenceEngine.from_model(tiny_hf("xlm-roberta"), **kw)
    second.warmup(None)
    assert second.compilations == 1 and second.stats.cache_hits == 1
  finally:
    jax.config.update("jax_compilation_cache_dir", old[0])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", old[1])
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", old[2])
    compilation_cache.reset_cache()


def test_buckets():
  b = Buckets((8, 1, 32), (128, 64))
  assert b.batch_sizes == (1, 8, 32) and b.batch(2) == 8 and b.batch(33) == 32
  assert b.length(1) == 64 and b.length(128) == 128
  with pytest.raises(Exception, match="exceeds the largest length bucket"):
    b.length(129)
