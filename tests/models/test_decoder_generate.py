"""Greedy decoding of decoder-only LLMs gives exactly transformers' `generate(do_sample=False)` tokens,
with left or right padding, through the function and through `xtjax generate`."""

import json

import numpy as np
import pytest
from decoder_fixtures import EOS, PROMPTS, hf_model, tiny_decoder_folder

from xtjax.cli.main import main
from xtjax.models.generate import generate
from xtjax.models.loading import load_pretrained

MAX_NEW = 12


def _hf_generated(folder, kind, prompts) -> list[list[int]]:
  """transformers' greedy tokens per prompt (left padding, as decoder-only generation requires)."""
  import torch

  pre = load_pretrained(folder, with_tokenizer=True)
  pre.tokenizer.padding_side = "left"
  enc = pre.tokenizer(prompts, padding=True, return_tensors="pt")
  with torch.no_grad():
    out = hf_model(folder, kind).generate(**enc, do_sample=False, max_new_tokens=MAX_NEW).numpy()
  rows = []
  for row in out[:, enc["input_ids"].shape[1]:]:
    toks = []
    for t in row.tolist():
      toks.append(t)
      if t == EOS:
        break
    rows.append(toks)
  return rows


def _ours(out) -> list[list[int]]:
  seqs, lengths = np.asarray(out.sequences), np.asarray(out.lengths)
  return [seqs[i, 1:1 + lengths[i]].tolist() for i in range(len(seqs))]


@pytest.mark.parametrize("kind", ["llama", "mistral", pytest.param("qwen2", marks=pytest.mark.slow)])
def test_greedy_matches_transformers_with_either_padding(tmp_path_factory, kind, layer_layout):
  """Stacked, the prefill and every decode step run the layers as one scan over the stacked KV cache."""
  folder = tiny_decoder_folder(tmp_path_factory, kind)
  expected = _hf_generated(folder, kind, PROMPTS)
  pre = load_pretrained(folder)
  assert pre.config.stacked_layers == (layer_layout == "stacked")
  for side in ("left", "right"):
    pre.tokenizer.padding_side = side
    enc = pre.tokenizer(PROMPTS, padding=True, return_tensors="np")
    out = generate(pre.model(), enc["input_ids"], enc["attention_mask"], max_new_tokens=MAX_NEW)
    assert _ours(out) == expected, side
    seqs = np.asarray(out.sequences)
    for row, toks in zip(seqs, expected):  # padding after EOS, as transformers does
      assert (row[1 + len(toks):] == pre.config.generation_pad_id).all()
  lengths = [len(t) for t in expected]
  if kind == "llama":  # the fixture makes some rows stop at EOS and others run to the limit
    assert min(lengths) < MAX_NEW and max(lengths) == MAX_NEW


def test_beam_search_is_refused_by_name(tmp_path_factory):
  pre = load_pretrained(tiny_decoder_folder(tmp_path_factory, "llama"))
  with pytest.raises(ValueError, match="beam search is not implemented for Decoder"):
    generate(pre.model(), np.ones((1, 4), np.int32), np.ones((1, 4), np.int32), max_new_tokens=2, num_beams=2)


def test_generate_cli_end_to_end(tmp_path_factory, tmp_path, capsys):
  folder = tiny_decoder_folder(tmp_path_factory, "llama")
  prompts = [PROMPTS[3], "", PROMPTS[2], "The quick brown fox jumps over the lazy dog.", PROMPTS[0]]
  (tmp_path / "prompts.txt").write_text("\n".join(prompts) + "\n", encoding="utf-8")
  out = tmp_path / "gen.jsonl"
  assert main(["generate", "--model", str(folder), "--input", str(tmp_path / "prompts.txt"), "--out", str(out),
               "--max-new-tokens", str(MAX_NEW), "--batch-size", "2"]) == 0
  rows = [json.loads(line) for line in out.read_text().splitlines()]
  kept = [p for p in prompts if p]
  assert [r["input"] for r in rows] == kept and [r["line"] for r in rows] == [1, 3, 4, 5]
  assert [r["tokens"] for r in rows] == _hf_generated(folder, "llama", kept)
  assert "generated 4 outputs" in capsys.readouterr().out


def test_generation_on_a_mesh_splits_the_kv_cache_and_gives_one_devices_tokens(tmp_path_factory, layer_layout):
  """Generation programs are traced under the activation sharding: on a data x tensor mesh the KV cache is
  split (rows over `data`, key/value heads over `tensor`; never replicated), and the tokens are one
  device's, bucket padding rows included."""
  import jax
  from jax.sharding import PartitionSpec

  from xtjax.evaluation.buckets import Buckets
  from xtjax.infer.engine import InferenceEngine
  from xtjax.parallel.mesh import MeshConfig, make_mesh
  from xtjax.parallel.rules import DEFAULT_RULES, activation_sharding

  folder = tiny_decoder_folder(tmp_path_factory, "llama")  # 2 key/value heads
  model = load_pretrained(folder).model()
  with activation_sharding(make_mesh(MeshConfig(data=2, tensor=2, devices=4)), DEFAULT_RULES):
    cache = jax.jit(lambda: model.init_cache(4, 16))()
  assert cache.keys.sharding.spec == cache.values.sharding.spec == PartitionSpec(None, "data", None, "tensor")
  assert cache.valid.sharding.spec == cache.next_position.sharding.spec == PartitionSpec("data")

  outs = []
  for mesh in (MeshConfig(devices=1), MeshConfig(data=2, tensor=2, devices=4)):
    engine = InferenceEngine.from_model(folder, mesh=mesh, buckets=Buckets((8,), (32,)))
    outs.append(engine.generate_texts(PROMPTS, max_new_tokens=MAX_NEW))
  assert outs[0] == outs[1]
