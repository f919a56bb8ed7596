"""`xtjax embed`, `convert` and `export` end to end, and their errors on bad input."""

import json

import numpy as np
import pytest

from xtjax.cli.main import main

LINES = ["The quick brown fox.", "Der schnelle braune Fuchs springt über den faulen Hund.", "敏捷的棕色狐狸",
         "Hello world, this is a tiny corpus for a tiny tokenizer and more words, " * 6, "x"]


def _torch_pooled(folder, lines, layer, pooling, max_length):
  import torch
  import transformers as tf

  tok = tf.AutoTokenizer.from_pretrained(str(folder))
  model = tf.AutoModel.from_pretrained(str(folder), attn_implementation="eager").eval()
  out = []
  for s in lines:  # one at a time: no padding at all in the reference
    enc = tok([s], truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
      h = model(**enc, output_hidden_states=True).hidden_states[layer][0].numpy()
    out.append(h.mean(0) if pooling == "mean" else h[0])
  return np.stack(out)


@pytest.mark.parametrize("kind,layer,pooling", [("xlm-roberta", 1, "mean"), ("bert", -1, "cls"), ("roberta", 0, "mean")])
def test_embed_equals_pytorch_pooling(tiny_hf, tmp_path, capsys, kind, layer, pooling):
  folder = tiny_hf(kind)
  inp = tmp_path / "in.txt"
  inp.write_text("\n".join(LINES) + "\n", encoding="utf-8")
  out = tmp_path / "emb.npy"
  rc = main(["embed", "--model", str(folder), "--input", str(inp), "--out", str(out), "--layer", str(layer),
             "--pooling", pooling, "--batch-size", "2", "--max-length", "24"])
  assert rc == 0
  got = np.load(out)
  assert got.dtype == np.float32 and got.shape == (len(LINES), 32)
  want = _torch_pooled(folder, LINES, layer, pooling, 24)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
  import transformers as tf

  tok = tf.AutoTokenizer.from_pretrained(str(folder))
  n_long = sum(len(tok(s)["input_ids"]) > 24 for s in LINES)
  assert n_long >= 1
  assert f"{n_long} truncated" in capsys.readouterr().out


def test_convert_export_round_trip(tiny_hf, tmp_path, capsys):
  import torch
  import transformers as tf

  src = tiny_hf("xlm-roberta", head="mlm")  # MLM head present in the checkpoint: ignored on import
  conv, exp = tmp_path / "conv", tmp_path / "exp"
  assert main(["convert", "--model", str(src), "--out", str(conv)]) == 0
  assert (conv / "xtjax_model.json").exists()
  assert main(["export", "--model", str(conv), "--out", str(exp)]) == 0
  ref = tf.AutoModel.from_pretrained(str(src), attn_implementation="eager").eval()
  back = tf.AutoModel.from_pretrained(str(exp), attn_implementation="eager").eval()
  assert type(back).__name__ == "XLMRobertaModel"
  ids = torch.tensor([[0, 10, 11, 12, 2, 1], [0, 20, 21, 22, 23, 2]])
  mask = (ids != 1).long()
  with torch.no_grad():
    a = ref(input_ids=ids, attention_mask=mask).last_hidden_state
    b = back(input_ids=ids, attention_mask=mask).last_hidden_state
  assert torch.equal(a, b)
  from safetensors.numpy import load_file

  saved = load_file(str(src / "model.safetensors"))
  exported = load_file(str(exp / "model.safetensors"))
  kept = {k.removeprefix("roberta."): v for k, v in saved.items() if not k.startswith("lm_head.")}
  assert sorted(kept) == sorted(exported)  # no pooler in the MLM checkpoint, none invented on export
  for k, v in kept.items():
    np.testing.assert_array_equal(exported[k], v, err_msg=k)
  tok = tf.AutoTokenizer.from_pretrained(str(exp))
  assert tok("hello world")["input_ids"] == tf.AutoTokenizer.from_pretrained(str(src))("hello world")["input_ids"]


def _run_err(args, capsys):
  rc = main(args)
  err = capsys.readouterr().err
  assert rc != 0
  assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
  return err


def test_bad_inputs_give_one_line_errors_and_no_output(tiny_hf, tmp_path, capsys):
  folder = tiny_hf("bert")
  out = tmp_path / "o.npy"
  empty = tmp_path / "empty.txt"
  empty.write_text("")
  err = _run_err(["embed", "--model", str(folder), "--input", str(empty), "--out", str(out)], capsys)
  assert "empty.txt" in err and "empty" in err
  err = _run_err(["embed", "--model", str(folder), "--input", str(tmp_path / "nope.txt"), "--out", str(out)], capsys)
  assert "nope.txt" in err
  good = tmp_path / "in.txt"
  good.write_text("hello\n")
  err = _run_err(["embed", "--model", str(folder), "--input", str(good), "--out", str(out), "--layer", "7"], capsys)
  assert "--layer 7" in err
  err = _run_err(["embed", "--model", str(tmp_path / "no_model"), "--input", str(good), "--out", str(out)], capsys)
  assert "no_model" in err
  assert not out.exists()
  assert not list(tmp_path.glob(".o.npy*"))


def _copy(folder, dst):
  import shutil

  shutil.copytree(folder, dst)
  return dst


def test_checkpoint_errors_name_the_problem(tiny_hf, tmp_path, capsys):
  from safetensors.numpy import load_file, save_file

  src = tiny_hf("roberta")
  out = tmp_path / "conv"
  # Missing config.json.
  d = _copy(src, tmp_path / "a")
  (d / "config.json").unlink()
  assert "config.json" in _run_err(["convert", "--model", str(d), "--out", str(out)], capsys)
  # Wrong architecture.
  d = _copy(src, tmp_path / "b")
  cfg = json.loads((d / "config.json").read_text())
  cfg["model_type"] = "gpt2"
  (d / "config.json").write_text(json.dumps(cfg))
  assert "unsupported model_type 'gpt2'" in _run_err(["convert", "--model", str(d), "--out", str(out)], capsys)
  # Truncated safetensors.
  d = _copy(src, tmp_path / "c")
  data = (d / "model.safetensors").read_bytes()
  (d / "model.safetensors").write_bytes(data[: len(data) // 2])
  err = _run_err(["convert", "--model", str(d), "--out", str(out)], capsys)
  assert "model.safetensors" in err and "truncated" in err
  # Shape mismatch and missing tensor.
  d = _copy(src, tmp_path / "d")
  sd = load_file(str(d / "model.safetensors"))
  sd["encoder.layer.1.intermediate.dense.weight"] = np.zeros((36, 32), np.float32)
  save_file(sd, str(d / "model.safetensors"), metadata={"format": "pt"})
  err = _run_err(["convert", "--model", str(d), "--out", str(out)], capsys)
  assert "encoder.layer.1.intermediate.dense.weight" in err and "[36, 32]" in err and "[37, 32]" in err
  del sd["encoder.layer.1.intermediate.dense.weight"]
  save_file(sd, str(d / "model.safetensors"), metadata={"format": "pt"})
  err = _run_err(["convert", "--model", str(d), "--out", str(out)], capsys)
  assert "missing tensor 'encoder.layer.1.intermediate.dense.weight'" in err
  # Unexpected tensor.
  sd = load_file(str(src / "model.safetensors"))
  sd["encoder.layer.0.extra.weight"] = np.zeros((2,), np.float32)
  save_file(sd, str(d / "model.safetensors"), metadata={"format": "pt"})
  assert "encoder.layer.0.extra.weight" in _run_err(["convert", "--model", str(d), "--out", str(out)], capsys)
  # Hub id while offline.
  err = _run_err(["convert", "--model", "someone/not-cached-model", "--out", str(out)], capsys)
  assert "not in the local Hugging Face cache" in err
  assert not out.exists()
