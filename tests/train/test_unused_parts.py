"""Nothing dead in the train state: a run none of whose heads reads the LM logits builds, trains, checkpoints
and loads no untied decoder LM head and no T5 decoder (`ModelConfig.for_heads`); the pretrained checkpoint
keeps them, loading skips them by name (strictly), and an exported folder says what it holds."""

import dataclasses

import numpy as np
import pytest
from conftest import toy_config
from decoder_fixtures import PROMPTS, tiny_decoder_folder
from fixtures import flat_paths
from flax import nnx
from t5_fixtures import tiny_t5_folder

from xtjax.errors import CheckpointError, ConfigError
from xtjax.models import hf_io, store
from xtjax.models.loading import export_hf, load_pretrained
from xtjax.parallel import topology
from xtjax.train.loop import Trainer

GiB = 2 ** 30


def _paths(tree) -> set[str]:
  """Every leaf's path ('encoder/layers/0/...'; optimizer states: their moments' paths)."""
  import jax

  from xtjax.train.optim import tree_paths

  return set(jax.tree.leaves(tree_paths(tree)))


def _cfg(toy_env, folder, task="toy_cls", **kw):
  return toy_config({**toy_env, "hf": folder}, tasks=[{"name": task, "data": {
      "path": str(toy_env["data"] / "{split}.{lang}.jsonl")}, "eval_languages": ["en"]}],
      model={"pretrained": str(folder)}, **kw)


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
  return tiny_decoder_folder(tmp_path_factory, "llama")


def test_a_decoder_classifier_neither_builds_trains_nor_saves_the_lm_head(toy_env, llama, tmp_path):
  """The trainer's own program: no `lm_head` among the parameters, the optimizer state or the exported model;
  the exported HF folder is the bare `LlamaModel` it holds, which transformers loads whole and which gives
  the hidden states of the trained stack."""
  import torch
  import transformers as tf

  t = Trainer(_cfg(toy_env, llama, steps=4, zero_shot=False), tmp_path / "run").setup()
  try:
    params, opt = _paths(t.program.abstract_params), _paths(t.program.abstract_state.opt_state)
    assert t.start.config.with_lm_head is False and not any("lm_head" in p for p in params | opt)
    assert any(p.startswith("encoder/embed") for p in params) and any("heads/toy_cls/score" in p for p in opt)
    t.run()
  finally:
    t.ckpt.close()
  family, saved = store.read_meta(tmp_path / "run" / "model")
  assert saved.with_lm_head is False
  pre = load_pretrained(str(tmp_path / "run" / "model"))
  assert not any("lm_head" in p for p in _paths(pre.params))
  out = export_hf(pre, tmp_path / "hf")
  assert hf_io.read_config(out)["architectures"] == ["LlamaModel"]
  hf, info = tf.AutoModel.from_pretrained(str(out), attn_implementation="eager", output_loading_info=True)
  assert type(hf).__name__ == "LlamaModel" and not info["missing_keys"] and not info["unexpected_keys"]
  tok = pre.tokenizer
  tok.padding_side = "right"
  enc = tok(PROMPTS, padding=True, return_tensors="np")
  ours = pre.model().encoder_outputs(enc["input_ids"], enc["attention_mask"]).last_hidden_state
  with torch.no_grad():
    theirs = hf(input_ids=torch.tensor(enc["input_ids"]), attention_mask=torch.tensor(enc["attention_mask"]))
  real = enc["attention_mask"] > 0
  np.testing.assert_allclose(np.asarray(ours)[real], theirs.last_hidden_state.numpy()[real], rtol=1e-4, atol=1e-4)
  assert load_pretrained(str(out)).config.with_lm_head is False  # the bare model reloads as what it is


def test_loading_skips_the_lm_head_by_name_and_stays_strict(llama):
  pre = load_pretrained(str(llama), lm_logits=False)
  assert "lm_head.weight" in pre.ignored and not any("lm_head" in p for p in _paths(pre.params))
  full = load_pretrained(str(llama))
  kept = flat_paths(nnx.to_pure_dict(full.params))
  assert set(kept) - _paths(pre.params) == {"lm_head/kernel"}
  for p, x in flat_paths(nnx.to_pure_dict(pre.params)).items():
    np.testing.assert_array_equal(np.asarray(x), np.asarray(kept[p]))
  tensors = hf_io.read_tensors(llama)
  with pytest.raises(CheckpointError, match="bogus"):  # an unknown tensor is still an error
    pre.family.params_from_hf(pre.config, {**tensors, "bogus.weight": np.zeros(2)})
  with pytest.raises(CheckpointError, match="model.norm.weight"):  # and so is a missing one
    pre.family.params_from_hf(pre.config, {k: v for k, v in tensors.items() if k != "model.norm.weight"})


def test_an_xtjax_folder_loads_without_its_lm_head(llama, tmp_path):
  """A whole model folder (e.g. a text-to-text phase's) read by a classification run: the LM head alone stays
  unread; a folder saved without it cannot serve a run that needs the LM logits."""
  full = load_pretrained(str(llama))
  store.save(tmp_path / "whole", full.family, full.config, full.params, full.tokenizer)
  part = load_pretrained(str(tmp_path / "whole"), lm_logits=False)
  assert part.config.with_lm_head is False
  kept = flat_paths(nnx.to_pure_dict(full.params))
  got = flat_paths(nnx.to_pure_dict(part.params))
  assert set(kept) - set(got) == {"lm_head/kernel"}
  for p, x in got.items():
    np.testing.assert_array_equal(np.asarray(x), np.asarray(kept[p]))
  store.save(tmp_path / "part", part.family, part.config, part.params, part.tokenizer)
  assert load_pretrained(str(tmp_path / "part")).config.lm_part_left_out


def test_a_text_to_text_run_needs_what_a_classifier_leaves_out(toy_env, llama, tmp_path):
  from xtjax.train import setup

  part = load_pretrained(str(llama), lm_logits=False)
  store.save(tmp_path / "part", part.family, part.config, part.params, part.tokenizer)
  cfg = _cfg(toy_env, llama, task="toy_cls_t2t", steps=2, zero_shot=False)
  assert setup.lm_logits_used(cfg) and not setup.lm_logits_used(_cfg(toy_env, llama))
  from xtjax.parallel.mesh import MeshConfig, make_mesh
  from xtjax.parallel.rules import DEFAULT_RULES

  mesh = make_mesh(MeshConfig(devices=1))
  whole = setup.encoder_start(cfg, mesh, DEFAULT_RULES)
  assert whole.config.with_lm_head and "lm_head" in nnx.to_pure_dict(whole.params)
  with pytest.raises(ConfigError, match="saved without its decoder or LM head"):
    setup.encoder_start(dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, pretrained=str(tmp_path / "part"))),
                        mesh, DEFAULT_RULES)


def test_an_mt5_classifier_runs_the_encoder_alone(toy_env, tmp_path_factory):
  """mT5 with a classification head: encoder only, loaded past the decoder by name; text-to-text keeps it."""
  from xtjax.parallel.mesh import MeshConfig, make_mesh
  from xtjax.parallel.rules import DEFAULT_RULES
  from xtjax.train import setup

  folder = tiny_t5_folder(tmp_path_factory, "mt5")
  mesh = make_mesh(MeshConfig(devices=1))
  cls = setup.encoder_start(_cfg(toy_env, folder), mesh, DEFAULT_RULES)
  assert cls.config.encoder_only and not ({"decoder", "lm_head"} & set(nnx.to_pure_dict(cls.params)))
  t2t = setup.encoder_start(_cfg(toy_env, folder, task="toy_cls_t2t"), mesh, DEFAULT_RULES)
  assert not t2t.config.encoder_only and "decoder" in nnx.to_pure_dict(t2t.params)


def test_presets_plan_only_what_their_heads_use():
  """`xtjax plan --preset ... --memory-only`: Llama-3.1-8B's MNLI classifier drops the [4096, 128256] LM head
  (f32: 0.98 GiB per device of weights, gradients and Adam moments on v4-16); mT5-XXL's drops the decoder."""
  from xtjax.cli.plan_cmd import add_estimates, format_plan, load_plan_config
  from xtjax.train.plan import plan

  v4_16 = topology.on_cpu(topology.parse("v4-16"))
  cls = plan(load_plan_config(None, ["model.param_dtype=float32"], "llama-3.1-8b"), v4_16, compile_train=False)
  t2t = plan(load_plan_config(None, ["model.param_dtype=float32", "tasks=[{name: mnli_t2t}]"], "llama-3.1-8b"),
             v4_16, compile_train=False)
  head = 4096 * 128256
  assert cls["left_out"] == {"paths": ["encoder/lm_head"], "params": head} and t2t["left_out"] is None
  assert not any("lm_head" in row["path"] for row in cls["shardings"])
  drop = {k: t2t["per_device"][k] - cls["per_device"][k] for k in ("params", "gradients", "optimizer_state")}
  net = (head - 4096 * 3) * 4 // 8  # f32 over 8 devices, less the classifier's own [4096, 3] score head
  assert drop == {"params": net, "gradients": net, "optimizer_state": 2 * net}
  assert "left out (no head of the run reads the LM logits): encoder/lm_head (525M params" in format_plan(
      add_estimates(cls))

  mt5 = plan(load_plan_config(None, [], "mt5-xxl"), topology.on_cpu(topology.parse("v4-8")), compile_train=False)
  assert mt5["left_out"]["paths"] == ["encoder/decoder", "encoder/lm_head"] and mt5["left_out"]["params"] > 7e9
  assert 5e9 < mt5["num_params"] < 6e9 and not any("decoder" in row["path"] for row in mt5["shardings"])
