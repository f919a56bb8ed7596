"""A tiny random Gemma 2 Hugging Face model (the decoder fixtures' tokenizer), built offline."""

from __future__ import annotations

from pathlib import Path

from decoder_fixtures import EOS, make_decoder_tokenizer
from fixtures import eager_hf_model, save_model_folder, session_model_folder

# 4 layers (2 sliding/full pairs, so a stacked model scans), a window shorter than the prompts, soft caps
# small enough to bite on random weights, and a query scale that is not head_dim's.
CONFIG = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
              head_dim=8, query_pre_attn_scalar=12, sliding_window=4, attn_logit_softcapping=2.0,
              final_logit_softcapping=2.0, max_position_embeddings=128, rms_norm_eps=1e-5)


def make_tiny_gemma2(folder: Path, seed: int = 0, with_tokenizer: bool = True) -> Path:
  """Norm weights perturbed away from zero (Gemma scales by 1 + w), query and key projections scaled up
  so attention scores reach the soft cap, and the EOS row of the tied embedding scaled up, so greedy
  decoding ends some rows early."""
  import torch
  import transformers as tf

  tok = make_decoder_tokenizer()
  cfg = tf.Gemma2Config(vocab_size=len(tok), pad_token_id=0, bos_token_id=1, eos_token_id=EOS, **CONFIG)
  torch.manual_seed(seed)
  model = tf.Gemma2ForCausalLM(cfg)
  with torch.no_grad():
    for name, p in model.named_parameters():
      if "norm" in name:
        p.add_(0.2 * torch.randn_like(p))
      if name.endswith(("q_proj.weight", "k_proj.weight")):  # scores of a few units: the soft cap bites
        p.mul_(15.0)
    model.model.embed_tokens.weight[EOS] *= 3.0
  return save_model_folder(model, tok, folder, with_tokenizer)


def tiny_gemma2_folder(tmp_path_factory) -> Path:
  return session_model_folder(tmp_path_factory, "tiny-gemma2", make_tiny_gemma2)


def hf_model(folder: Path):
  return eager_hf_model(folder, "Gemma2ForCausalLM")
