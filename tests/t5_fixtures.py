"""Tiny random T5-family Hugging Face models and a T5-style tokenizer, built offline by the tests."""

from __future__ import annotations

from pathlib import Path

from fixtures import eager_hf_model, fixed_unigram_tokenizer, save_model_folder, session_model_folder

PROMPTS = ["The quick brown fox.", "Der schnelle braune Fuchs springt über den faulen Hund.", "敏捷的棕色狐狸",
           "Hello world, this is a tiny corpus for a tiny tokenizer and more words.", "lazy dog"]

# kind -> (transformers class names, config overrides). "t5" is T5 v1.0 (ReLU, tied and rescaled head);
# "t5-v1_1" is gated-GELU with an untied head under model_type t5.
EOS_SCALE = {"mt5": 2.0, "t5": 3.0, "t5-v1_1": 2.0, "umt5": 1.0}
KINDS = {
    "mt5": ("MT5Config", "MT5ForConditionalGeneration", dict(feed_forward_proj="gated-gelu", tie=False)),
    "t5": ("T5Config", "T5ForConditionalGeneration", dict(feed_forward_proj="relu", tie=True)),
    "t5-v1_1": ("T5Config", "T5ForConditionalGeneration", dict(feed_forward_proj="gated-silu", tie=False)),
    "umt5": ("UMT5Config", "UMT5ForConditionalGeneration", dict(feed_forward_proj="gated-gelu", tie=False)),
}


def make_t5_tokenizer():
  """A sentencepiece-style Unigram tokenizer with T5's special ids: <pad>=0 </s>=1 <unk>=2; appends </s>."""
  return fixed_unigram_tokenizer(["<pad>", "</s>", "<unk>"], "<unk>", "$A </s>", "$A </s> $B </s>",
                                 eos_token="</s>", pad_token="<pad>")


def make_tiny_t5(folder: Path, kind: str = "mt5", seed: int = 0, with_tokenizer: bool = True) -> Path:
  """Saves a tiny random T5-family model (d_model 32, 2+2 layers, 4 heads, d_kv 8, d_ff 37).

  Layer norms are perturbed away from ones and the LM head is untied with its own random values,
  so that a mapping mistake cannot hide. The EOS row of the LM head is scaled up so that greedy
  decoding ends some rows early and runs others to the length limit.
  """
  import torch
  import transformers as tf

  cfg_name, model_name, opts = KINDS[kind]
  tok = make_t5_tokenizer()
  cfg = getattr(tf, cfg_name)(
      vocab_size=len(tok), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_decoder_layers=2, num_heads=4,
      relative_attention_num_buckets=8, relative_attention_max_distance=20, dropout_rate=0.0,
      feed_forward_proj=opts["feed_forward_proj"], tie_word_embeddings=opts["tie"], pad_token_id=0, eos_token_id=1,
      decoder_start_token_id=0)
  torch.manual_seed(seed)
  model = getattr(tf, model_name)(cfg)
  with torch.no_grad():
    if not opts["tie"] and model.lm_head.weight is model.shared.weight:
      # transformers >= 5 ties every T5-family model built from a config; real mT5 heads are separate.
      model.lm_head.weight = torch.nn.Parameter(torch.randn_like(model.shared.weight))
    for name, p in model.named_parameters():
      if "layer_norm" in name:
        p.add_(0.2 * torch.randn_like(p))
    head = model.shared.weight if opts["tie"] else model.lm_head.weight
    head[cfg.eos_token_id] *= EOS_SCALE[kind]
  return save_model_folder(model, tok, folder, with_tokenizer)


def tiny_t5_folder(tmp_path_factory, kind: str) -> Path:
  """A tiny model folder built once per test session (shared by every T5 test module)."""
  return session_model_folder(tmp_path_factory, f"tiny-t5-{kind}", lambda folder: make_tiny_t5(folder, kind))


def hf_model(folder: Path, kind: str):
  return eager_hf_model(folder, KINDS[kind][1])


def hf_generated(sequences_BxT, eos_token_id: int = 1) -> list[list[int]]:
  """Generated tokens per row of transformers' `generate` output: after the start token, up to EOS."""
  out = []
  for row in sequences_BxT:
    toks = []
    for t in list(row[1:]):
      toks.append(int(t))
      if t == eos_token_id:
        break
    out.append(toks)
  return out
