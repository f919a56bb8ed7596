"""Greedy and beam-search decoding give exactly transformers' `generate` tokens; `xtjax generate` end to end."""

import json

import numpy as np
import pytest
from t5_fixtures import PROMPTS, hf_generated, hf_model, tiny_t5_folder

from xtjax.cli.main import main
from xtjax.models.generate import bucket_length, generate
from xtjax.models.loading import load_pretrained

MAX_NEW = 16


def _hf_generate(folder, kind, enc, **kw):
  import torch

  with torch.no_grad():
    out = hf_model(folder, kind).generate(input_ids=torch.tensor(enc["input_ids"]),
                                          attention_mask=torch.tensor(enc["attention_mask"]), do_sample=False,
                                          max_new_tokens=MAX_NEW, **kw)
  return out.numpy()


def _ours(out) -> list[list[int]]:
  seqs, lengths = np.asarray(out.sequences), np.asarray(out.lengths)
  return [seqs[i, 1:1 + lengths[i]].tolist() for i in range(len(seqs))]


def _check(folder, kind, num_beams=1, length_penalty=1.0, early_stopping=False):
  pre = load_pretrained(folder)
  enc = pre.tokenizer(PROMPTS, padding=True, return_tensors="np")
  ref = _hf_generate(folder, kind, enc, num_beams=num_beams, length_penalty=length_penalty,
                     early_stopping=early_stopping)
  out = generate(pre.model(), enc["input_ids"], enc["attention_mask"], max_new_tokens=MAX_NEW, num_beams=num_beams,
                 length_penalty=length_penalty, early_stopping=early_stopping)
  expected, got = hf_generated(ref), _ours(out)
  assert got == expected
  seqs = np.asarray(out.sequences)
  assert (seqs[:, 0] == pre.config.decoder_start_token_id).all()
  for row, toks in zip(seqs, got):  # padding after EOS, as transformers does
    assert (row[1 + len(toks):] == pre.config.pad_token_id).all()
  return got


@pytest.mark.parametrize("kind", ["mt5", "t5"])
def test_greedy_matches_transformers(tmp_path_factory, kind):
  got = _check(tiny_t5_folder(tmp_path_factory, kind), kind)
  lengths = [len(t) for t in got]
  if kind == "mt5":  # the fixture makes some rows stop at EOS and others run to the limit
    assert min(lengths) < MAX_NEW and max(lengths) == MAX_NEW and got[min(range(5), key=lengths.__getitem__)][-1] == 1


def test_beam_search_matches_transformers(tmp_path_factory):
  got = _check(tiny_t5_folder(tmp_path_factory, "t5-v1_1"), "t5-v1_1", num_beams=3, length_penalty=0.5,
               early_stopping=True)
  assert len({len(t) for t in got}) > 1


@pytest.mark.slow
@pytest.mark.parametrize("kind,num_beams,length_penalty,early_stopping", [
    ("mt5", 3, 1.0, False), ("mt5", 4, 2.0, False), ("t5", 3, 1.0, False), ("t5", 2, 1.0, "never"),
    ("t5-v1_1", 4, 2.0, False), ("t5-v1_1", 1, 1.0, False), ("umt5", 1, 1.0, False)])
def test_more_decoding_settings_match_transformers(tmp_path_factory, kind, num_beams, length_penalty, early_stopping):
  # umT5 beam search is left out: transformers >= 5 rescales umT5 logits (see test_t5_parity).
  _check(tiny_t5_folder(tmp_path_factory, kind), kind, num_beams, length_penalty, early_stopping)


def test_generation_on_a_mesh_splits_the_decoder_cache_and_gives_one_devices_tokens(tmp_path_factory):
  """Under the activation sharding the self-attention cache is split (rows over `data`, heads over
  `tensor`), and beam search on a data x tensor mesh gives one device's tokens."""
  import jax
  import jax.numpy as jnp
  from jax.sharding import PartitionSpec

  from xtjax.evaluation.buckets import Buckets
  from xtjax.infer.engine import InferenceEngine
  from xtjax.parallel.mesh import MeshConfig, make_mesh
  from xtjax.parallel.rules import DEFAULT_RULES, activation_sharding

  folder = tiny_t5_folder(tmp_path_factory, "mt5")
  model = load_pretrained(folder).model()
  hidden = jnp.zeros((4, 8, model.cfg.d_model), jnp.float32)
  with activation_sharding(make_mesh(MeshConfig(data=2, tensor=2, devices=4)), DEFAULT_RULES):
    cache = jax.jit(lambda h: model.init_cache(h, 6))(hidden)
  assert {k.sharding.spec for k in cache.self_keys + cache.self_values} == {PartitionSpec("data", None, "tensor")}

  outs = []
  for mesh in (MeshConfig(devices=1), MeshConfig(data=2, tensor=2, devices=4)):
    engine = InferenceEngine.from_model(folder, mesh=mesh, buckets=Buckets((8,), (32,)))
    outs.append(engine.generate_texts(PROMPTS, max_new_tokens=MAX_NEW, num_beams=2))
  assert outs[0] == outs[1]


def test_bucket_length():
  assert [bucket_length(n, 512) for n in (1, 8, 9, 33, 500, 600)] == [8, 8, 16, 64, 512, 512]
  assert bucket_length(40, 48) == 48


def test_generate_cli_end_to_end(tmp_path_factory, tmp_path, capsys):
  folder = tiny_t5_folder(tmp_path_factory, "mt5")
  # One batch of long prompts and one of short ones, 9..40 tokens: every batch pads to 16 (--max-length).
  prompts = [PROMPTS[3], "", PROMPTS[2], "The quick brown fox jumps over the lazy dog.", PROMPTS[1] * 3]
  (tmp_path / "prompts.txt").write_text("\n".join(prompts) + "\n", encoding="utf-8")
  out = tmp_path / "out" / "gen.jsonl"
  rc = main(["generate", "--model", str(folder), "--input", str(tmp_path / "prompts.txt"), "--max-new-tokens", "6",
             "--out", str(out), "--batch-size", "2", "--max-length", "16"])
  assert rc == 0
  printed = capsys.readouterr().out
  assert "tokens/s" in printed and "generated 4 outputs" in printed and "input lengths [16]" in printed
  rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
  assert [r["line"] for r in rows] == [1, 3, 4, 5]
  assert [r["input"] for r in rows] == [p for p in prompts if p]
  # The same tokens as transformers' greedy decoding of each prompt on its own (truncated to 16 tokens).
  pre = load_pretrained(folder)
  for r in rows:
    enc = pre.tokenizer([r["input"]], truncation=True, max_length=16, return_tensors="np")
    assert r["tokens"] == hf_generated(_hf_generate(folder, "mt5", enc))[0][:6]
    assert r["output"] == pre.tokenizer.decode(r["tokens"], skip_special_tokens=True)


def test_generate_cli_errors(tmp_path_factory, tmp_path, capsys):
  folder = tiny_t5_folder(tmp_path_factory, "mt5")
  (tmp_path / "empty.txt").write_text("\n  \n", encoding="utf-8")
  args = ["generate", "--model", str(folder), "--max-new-tokens", "4", "--out", str(tmp_path / "o.jsonl")]
  assert main(args + ["--input", str(tmp_path / "empty.txt")]) == 2
  assert "empty.txt: no prompts" in capsys.readouterr().err
  assert main(args + ["--input", str(tmp_path / "missing.txt")]) == 2
  assert "missing.txt: no such file" in capsys.readouterr().err
  (tmp_path / "p.txt").write_text("hello\n", encoding="utf-8")
  assert main(args[:-4] + ["--max-new-tokens", "0", "--out", str(tmp_path / "o.jsonl"), "--input",
                           str(tmp_path / "p.txt")]) == 2
  assert "--max-new-tokens must be >= 1" in capsys.readouterr().err
  assert not (tmp_path / "o.jsonl").exists()
