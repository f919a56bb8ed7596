"""LoRA runs: optimizer state for adapters and heads only, exact resume, merged export, phase bridging."""

import jax
import numpy as np
import pytest
from conftest import toy_config
from flax import nnx

from xtjax.checkpoint import restore_best
from xtjax.runs.info import read_run
from xtjax.errors import ConfigError
from xtjax.models import lora as lora_lib
from xtjax.models.loading import load_pretrained
from xtjax.train.loop import Trainer

LORA = {"targets": [r"encoder/layers/\d+/attention/(query|value)", r"encoder/layers/\d+/output/kernel"],
        "rank": 4, "alpha": 8.0, "dropout": 0.1}
ONE = {"data": 1, "devices": 1}


def _flat(tree):
  return {jax.tree_util.keystr(p, simple=True, separator="/"): np.asarray(jax.device_get(x))
          for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _run(env, workdir, stop=None, **kw):
  t = Trainer(toy_config(env, **kw), workdir).setup()
  try:
    return t, t.run(stop)
  finally:
    t.ckpt.close()


def _trained(path: str) -> bool:
  return "_lora/" in path or path.startswith("heads/")


@pytest.mark.slow
def test_lora_run_trains_adapters_and_heads_only_and_exports_merged(toy_env, tmp_path):
  kw = dict(steps=3, eval_every=3, zero_shot=False, mesh=ONE, lora=LORA)
  run, summary = _run(toy_env, tmp_path / "inter", **kw)
  assert summary["status"] == "finished"
  params = _flat(nnx.to_pure_dict(run.state.params))
  # Adam moments exist for the adapters and the head only; the frozen base carries none.
  moments = {p: x for p, x in _flat(run.state.opt_state).items() if x.ndim}
  trained = {p for p in params if _trained(p)}
  assert {p.split("/mu/")[1].removesuffix("/value") for p in moments if "/mu/" in p} == trained
  assert sum(x.size for x in moments.values()) == 2 * sum(params[p].size for p in trained)
  assert any("query_lora" in p for p in trained) and not any("key_lora" in p for p in trained)
  # The frozen base did not move; the adapters' B left zero.
  start = _flat(nnx.to_pure_dict(load_pretrained(toy_env["hf"], with_tokenizer=False).params))
  for p, x in start.items():
    np.testing.assert_array_equal(params["encoder/" + p], x)
  assert np.abs(params["encoder/layers/0/attention/query_lora/b"]).max() > 0
  # <run>/model holds the merged weights; its outputs equal the adapter model's (here and in transformers).
  best, _ = run.best_params()
  merged = load_pretrained(tmp_path / "inter" / "model", with_tokenizer=False)
  want = lora_lib.merged(nnx.to_pure_dict(best)["encoder"], LORA["alpha"])
  got = _flat(nnx.to_pure_dict(merged.params))
  assert got.keys() == _flat(want).keys()
  for p, x in _flat(want).items():
    np.testing.assert_allclose(got[p], x, rtol=1e-6, atol=1e-7)
  ids = np.array([[0, 5, 9, 13, 2, 1]], np.int32)
  mask = (ids != 1).astype(np.int32)
  adapter_model = nnx.merge(run.program.graphdef, best)
  ours = np.asarray(adapter_model.encoder(ids, mask).last_hidden_state)
  np.testing.assert_allclose(np.asarray(merged.model()(ids, mask).last_hidden_state), ours, rtol=1e-5, atol=1e-5)
  _check_transformers(merged, tmp_path / "hf", ids, mask, ours)
  # Reading the run back (evaluation, inference) builds the adapters too.
  info = read_run(tmp_path / "inter")
  _, restored = restore_best(info, run.mesh)
  assert _flat(nnx.to_pure_dict(restored)).keys() == _flat(nnx.to_pure_dict(best)).keys()
  _check_bridging(toy_env, tmp_path, run, best)


def _check_transformers(merged, out, ids, mask, ours):
  import torch
  import transformers

  from xtjax.models.loading import export_hf

  export_hf(merged, out)
  hf = transformers.AutoModel.from_pretrained(str(out)).eval()
  with torch.no_grad():
    theirs = hf(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).last_hidden_state.numpy()
  np.testing.assert_allclose(theirs, ours, rtol=1e-4, atol=1e-4)


def _check_bridging(env, tmp_path, inter, best):
  best = _flat(nnx.to_pure_dict(best))
  kw = dict(steps=3, zero_shot=False, mesh=ONE, init_from=str(tmp_path / "inter"), seed=3)
  with pytest.raises(ConfigError, match="init_from_lora"):
    Trainer(toy_config(env, **kw), tmp_path / "unset").setup()
  merged = _flat(nnx.to_pure_dict(load_pretrained(tmp_path / "inter" / "model", with_tokenizer=False).params))
  base = _flat(nnx.to_pure_dict(load_pretrained(env["hf"], with_tokenizer=False).params))
  for how, lora in (("merged", LORA), ("merged", None), ("adapters", LORA)):
    t = Trainer(toy_config(env, init_from_lora=how, lora=lora, **kw), tmp_path / f"{how}-{lora is None}").setup()
    try:
      params = _flat(nnx.to_pure_dict(t.state.params))
      start = merged if how == "merged" else base  # `adapters`: the base weights the adapters were trained on
      for p, x in start.items():
        np.testing.assert_array_equal(params["encoder/" + p], x)
      adapters = {p: x for p, x in params.items() if "_lora/" in p}
      if how == "adapters":
        assert adapters.keys() and all(np.array_equal(x, best[p]) for p, x in adapters.items())
      elif lora is not None:  # fresh adapters on the merged weights
        assert adapters.keys() and not any(x.any() for p, x in adapters.items() if p.endswith("/b"))
      else:
        assert not adapters
    finally:
      t.ckpt.close()
  with pytest.raises(ConfigError, match="no `lora` config"):
    Trainer(toy_config(env, init_from_lora="adapters", **kw), tmp_path / "no-lora").setup()


@pytest.mark.slow
def test_lora_sigterm_resume_equals_uninterrupted(toy_env, tmp_path):
  kw = dict(steps=6, eval_every=100, zero_shot=False, mesh=ONE, lora=LORA)
  full, _ = _run(toy_env, tmp_path / "full", **kw)
  _, summary = _run(toy_env, tmp_path / "cut", stop=4, **kw)
  assert summary == {"status": "preempted", "step": 4}
  resumed, summary = _run(toy_env, tmp_path / "cut", **kw)
  assert summary["start"].startswith("resumed from")
  a, b = _flat(full.state), _flat(resumed.state)
  assert a.keys() == b.keys()
  for p in a:
    np.testing.assert_array_equal(a[p], b[p], err_msg=p)
