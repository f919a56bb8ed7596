"""Gemma 2 equals transformers' `Gemma2ForCausalLM` (f32, left and right padding): logits and hidden
states, cached decoding, greedy generation token for token, the classification head
(`Gemma2ForSequenceClassification`) and a bit-identical export; its layers stack as (sliding, full) pairs."""

import dataclasses
import functools
import importlib.util

import jax
import numpy as np
import pytest
from decoder_fixtures import EOS, PROMPTS
from flax import nnx
from gemma2_fixtures import hf_model, tiny_gemma2_folder

from xtjax.models.gemma2 import Gemma2
from xtjax.models.generate import generate
from xtjax.models.loading import load_pretrained

MAX_NEW = 12


@functools.partial(jax.jit, static_argnums=0)
def _forward(graphdef, params, ids, mask):
  out = nnx.merge(graphdef, params)(ids, mask)
  return out.logits, out.hidden_states


def _batch(tok, side):
  tok.padding_side = side
  enc = tok(PROMPTS, padding=True, return_tensors="np")
  assert (enc["attention_mask"] == 0).any() and enc["input_ids"].shape[1] > 2 * 4  # longer than the window
  return enc["input_ids"], enc["attention_mask"]


def _torch(folder, ids, mask):
  import torch

  pos = np.maximum(np.cumsum(mask, 1) - 1, 0)  # positions over real tokens, as generate() makes them
  with torch.no_grad():
    out = hf_model(folder)(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                           position_ids=torch.tensor(pos), output_hidden_states=True)
  return out.logits.numpy(), [h.numpy() for h in out.hidden_states]


def _load(folder, layer_layout):
  pre = load_pretrained(folder)
  layers = nnx.to_pure_dict(pre.params)["layers"]
  assert ("stacked" in layers) == (layer_layout == "stacked")
  if layer_layout == "stacked":  # one scan step per (sliding, full) pair
    assert layers["stacked"]["sliding"]["attention"]["q"]["kernel"].shape[0] == pre.config.num_layers // 2
  return pre


def test_logits_and_hidden_states_match_pytorch(tmp_path_factory, layer_layout):
  folder = tiny_gemma2_folder(tmp_path_factory)
  pre = _load(folder, layer_layout)
  assert pre.family.name == "gemma2" and pre.config.kind == "causal"
  graphdef, params = nnx.split(pre.model())
  for side in ("left", "right"):
    ids, mask = _batch(pre.tokenizer, side)
    ref_logits, ref_hidden = _torch(folder, ids, mask)
    logits, hidden = _forward(graphdef, params, ids, mask)
    real = mask.astype(bool)
    np.testing.assert_allclose(np.asarray(logits)[real], ref_logits[real], atol=2e-5, rtol=0)
    assert len(hidden) == len(ref_hidden) == pre.config.num_layers + 1
    for ours, ref in zip(hidden, ref_hidden):
      np.testing.assert_allclose(np.asarray(ours)[real], ref[real], atol=2e-5, rtol=0)


@pytest.mark.parametrize("switch", [dict(sliding_window=0), dict(attn_logit_softcapping=0.0),
                                    dict(final_logit_softcapping=0.0), dict(query_pre_attn_scalar=8)])
def test_each_gemma_switch_changes_the_logits(tmp_path_factory, switch):
  """Without any one of them the parity above would fail: the fixture makes each of them bite."""
  folder = tiny_gemma2_folder(tmp_path_factory)
  pre = load_pretrained(folder)
  ids, mask = _batch(pre.tokenizer, "right")
  real = mask.astype(bool)
  ref_logits, _ = _torch(folder, ids, mask)
  other = nnx.merge(nnx.graphdef(Gemma2(dataclasses.replace(pre.config, **switch), nnx.Rngs(0))), pre.params)
  assert not np.allclose(np.asarray(other(ids, mask).logits)[real], ref_logits[real], atol=1e-3)


def test_cached_decoding_equals_full_pass(tmp_path_factory, layer_layout):
  from test_decoder_parity import _cached

  pre = _load(tiny_gemma2_folder(tmp_path_factory), layer_layout)
  graphdef, params = nnx.split(pre.model())
  for side in ("left", "right"):
    ids, mask = _batch(pre.tokenizer, side)
    stepped, full = _cached(graphdef, params, ids, mask, 6)
    np.testing.assert_allclose(np.asarray(stepped), np.asarray(full), atol=1e-5, rtol=0)


def test_greedy_generation_matches_transformers(tmp_path_factory, layer_layout):
  import torch

  folder = tiny_gemma2_folder(tmp_path_factory)
  pre = _load(folder, layer_layout)
  pre.tokenizer.padding_side = "left"
  enc = pre.tokenizer(PROMPTS, padding=True, return_tensors="pt")
  with torch.no_grad():
    out = hf_model(folder).generate(**enc, do_sample=False, max_new_tokens=MAX_NEW).numpy()
  expected = []
  for row in out[:, enc["input_ids"].shape[1]:].tolist():
    expected.append(row[:row.index(EOS) + 1] if EOS in row else row)
  assert min(map(len, expected)) < MAX_NEW  # some rows stop at EOS
  for side in ("left", "right"):
    pre.tokenizer.padding_side = side
    batch = pre.tokenizer(PROMPTS, padding=True, return_tensors="np")
    got = generate(pre.model(), batch["input_ids"], batch["attention_mask"], max_new_tokens=MAX_NEW)
    seqs, lengths = np.asarray(got.sequences), np.asarray(got.lengths)
    assert [seqs[i, 1:1 + lengths[i]].tolist() for i in range(len(seqs))] == expected, side


@pytest.mark.parametrize("side", ["left", "right"])
def test_classification_head_equals_transformers(tmp_path_factory, side):
  import torch
  import transformers as tf

  from xtjax.models.heads import HeadConfig
  from xtjax.parallel.mesh import MeshConfig, make_mesh
  from xtjax.parallel.rules import DEFAULT_RULES
  from xtjax.train.setup import EncoderStart, build_model

  folder = tiny_gemma2_folder(tmp_path_factory)
  mesh = make_mesh(MeshConfig(devices=1))
  pre = load_pretrained(str(folder), mesh=mesh, rules=DEFAULT_RULES)
  graphdef, params, _ = build_model(EncoderStart(pre.family, pre.config, pre.params, pre.tokenizer, "test"),
                                    {"cls": HeadConfig("classification", 3)}, 0, mesh, DEFAULT_RULES)
  torch.manual_seed(0)
  ref = tf.Gemma2ForSequenceClassification.from_pretrained(str(folder), num_labels=3, attn_implementation="eager").eval()
  pure = nnx.to_pure_dict(params)
  pure["heads"]["cls"]["score"]["kernel"] = ref.score.weight.detach().numpy().T
  nnx.replace_by_pure_dict(params, pure)
  model = nnx.merge(graphdef, params)
  pre.tokenizer.padding_side = side
  enc = pre.tokenizer(PROMPTS, padding=True, return_tensors="np")
  batch = {"input_ids": enc["input_ids"].astype(np.int32), "attention_mask": enc["attention_mask"].astype(np.int32)}
  mask = torch.tensor(batch["attention_mask"], dtype=torch.long)
  with torch.no_grad():
    expected = ref(input_ids=torch.tensor(batch["input_ids"], dtype=torch.long), attention_mask=mask,
                   position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits.numpy()
  np.testing.assert_allclose(np.asarray(model.eval_outputs("cls", batch)), expected, rtol=1e-4, atol=1e-5)


def test_export_round_trips_bit_identically(tmp_path_factory, tmp_path, layer_layout):
  from safetensors.numpy import load_file

  from xtjax.cli.main import main

  folder = tiny_gemma2_folder(tmp_path_factory)
  assert main(["convert", "--model", str(folder), "--out", str(tmp_path / "xtjax")]) == 0
  assert main(["export", "--model", str(tmp_path / "xtjax"), "--out", str(tmp_path / "export")]) == 0
  pre, out = _load(folder, layer_layout), tmp_path / "export"
  original, exported = load_file(str(folder / "model.safetensors")), load_file(str(out / "model.safetensors"))
  assert sorted(original) == sorted(exported)
  for name, t in original.items():
    assert exported[name].dtype == t.dtype and exported[name].tobytes() == t.tobytes(), name
  assert _load(out, layer_layout).config == pre.config
  import transformers

  cfg = transformers.AutoConfig.from_pretrained(str(out))
  assert type(cfg).__name__ == "Gemma2Config" and cfg.layer_types[:2] == ["sliding_attention", "full_attention"]


def test_presets_have_the_published_sizes():
  from xtjax.models import registry
  from xtjax.models.init import abstract, count_params

  sizes = {}
  for name in ("gemma-2-2b", "gemma-2-9b", "gemma-2-27b"):
    fam, cfg = registry.preset(name)
    sizes[name] = count_params(abstract(fam, cfg)[1]) / 1e9
  # google/gemma-2-*: 2.61B, 9.24B, 27.2B parameters (tied embedding counted once).
  assert abs(sizes["gemma-2-2b"] - 2.61) < 0.01 and abs(sizes["gemma-2-9b"] - 9.24) < 0.01, sizes
  assert abs(sizes["gemma-2-27b"] - 27.23) < 0.02, sizes


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("libtpu") is None, reason="libtpu is not installed (the `tpu` extra)")
def test_plan_on_a_v5p_slice(monkeypatch):
  """`xtjax plan` for Gemma 2 on a described v5p-8 (4 chips): the 9B preset's sharded state (memory only),
  and a tiny Gemma 2 whose stacked (sliding, full) pairs libtpu compiles ahead of time (~10 s)."""
  monkeypatch.setenv("TPU_WORKER_HOSTNAMES", "localhost")
  monkeypatch.setenv("TPU_ACCELERATOR_TYPE", "v5p-8")
  monkeypatch.setenv("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")  # another plan may hold libtpu's lock file
  from xtjax.cli.plan_cmd import load_plan_config
  from xtjax.models import registry
  from xtjax.models.init import abstract, count_params
  from xtjax.parallel import topology
  from xtjax.train.plan import plan

  r = plan(load_plan_config(None, [], "gemma-2-9b"), topology.parse("v5p-8"), compile_train=False)
  family, cfg = registry.preset("gemma-2-9b")
  assert r["model"] == "gemma2" and r["mesh"] == {"data": 1, "fsdp": 4, "tensor": 1}
  assert count_params(abstract(family, cfg)[1]) < r["num_params"] < count_params(abstract(family, cfg)[1]) + 10 ** 8
  per = r["per_device"]  # f32 weights, gradients and two Adam moments over 4 chips: ~34 GiB of a v5p's 95
  assert 30 * 2 ** 30 < per["total"] < 40 * 2 ** 30 and abs(per["optimizer_state"] - 2 * per["params"]) < 2 ** 20
  tiny = ["model.config_overrides={num_layers: 4, hidden_size: 64, num_heads: 4, num_kv_heads: 2, head_dim: 16, "
          "intermediate_size: 128, vocab_size: 256, sliding_window: 8, scan_layers: true}", "features.max_length=32",
          "batch_size=8", "eval_batch_size=8", "optim.grad_accum_steps=1"]
  r = plan(load_plan_config(None, tiny, "gemma-2-2b"), topology.parse("v5p-8"), compile_eval=False)
  assert r["fits"] is True and [p["name"] for p in r["programs"]] == ["train_step"]
  assert r["programs"][0]["flops"] > 0 and r["programs"][0]["peak_bytes"] > 0
