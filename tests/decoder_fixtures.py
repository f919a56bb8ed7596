"""Tiny random Llama / Qwen2 / Mistral Hugging Face models and a Llama-style tokenizer, built offline."""

from __future__ import annotations

from pathlib import Path

from fixtures import eager_hf_model, fixed_unigram_tokenizer, save_model_folder, session_model_folder

PROMPTS = ["The quick brown fox.", "Der schnelle braune Fuchs springt über den faulen Hund.", "敏捷的棕色狐狸",
           "Hello world, this is a tiny corpus for a tiny tokenizer and more words.", "lazy dog"]
EOS = 2

# kind -> (transformers config class, model class, config overrides). Each switches on different parts:
# GQA + Llama-3 RoPE scaling; tied head + linear RoPE + biases; Qwen2 q/k/v biases + YaRN; Mistral sliding
# window with a head_dim that is not hidden_size / heads.
_ROPE_LLAMA3 = dict(rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                    original_max_position_embeddings=16)
KINDS = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", dict(num_key_value_heads=2, rope_parameters=_ROPE_LLAMA3)),
    "llama-tied": ("LlamaConfig", "LlamaForCausalLM",
                   dict(num_key_value_heads=4, tie_word_embeddings=True, attention_bias=True, mlp_bias=True,
                        rope_parameters=dict(rope_type="linear", rope_theta=10000.0, factor=2.0))),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM",
              dict(num_key_value_heads=2, rope_parameters=dict(rope_type="yarn", rope_theta=10000.0, factor=4.0,
                                                               original_max_position_embeddings=16))),
    "mistral": ("MistralConfig", "MistralForCausalLM", dict(num_key_value_heads=1, head_dim=12, sliding_window=4)),
}


def make_decoder_tokenizer():
  """A Llama-style Unigram tokenizer: <pad>=0 <s>=1 </s>=2 <unk>=3; prepends <s>, pads on the left (as
  decoder-only generation needs)."""
  return fixed_unigram_tokenizer(["<pad>", "<s>", "</s>", "<unk>"], "<unk>", "<s> $A", "<s> $A <s> $B",
                                 bos_token="<s>", eos_token="</s>", pad_token="<pad>", padding_side="left")


def make_tiny_decoder(folder: Path, kind: str = "llama", seed: int = 0, with_tokenizer: bool = True) -> Path:
  """Saves a tiny random decoder LLM (hidden 32, 2 layers, 4 heads, FFN 37, its own vocabulary).

  Norm scales and biases are perturbed away from their init so a mapping mistake cannot hide; the
  EOS row of the LM head is scaled up so greedy decoding ends some rows early.
  """
  import torch
  import transformers as tf

  cfg_name, model_name, opts = KINDS[kind]
  tok = make_decoder_tokenizer()
  cfg = getattr(tf, cfg_name)(
      vocab_size=len(tok), hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
      max_position_embeddings=128, rms_norm_eps=1e-5, pad_token_id=None, bos_token_id=1, eos_token_id=EOS, **opts)
  torch.manual_seed(seed)
  model = getattr(tf, model_name)(cfg)
  with torch.no_grad():
    for name, p in model.named_parameters():
      if "norm" in name or name.endswith(".bias"):
        p.add_(0.2 * torch.randn_like(p))
    model.lm_head.weight[EOS] *= 3.0
  return save_model_folder(model, tok, folder, with_tokenizer)


def tiny_decoder_folder(tmp_path_factory, kind: str) -> Path:
  """A tiny model folder built once per test session."""
  return session_model_folder(tmp_path_factory, f"tiny-decoder-{kind}", lambda folder: make_tiny_decoder(folder, kind))


def hf_model(folder: Path, kind: str):
  return eager_hf_model(folder, KINDS[kind][1])
