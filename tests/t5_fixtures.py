"""Tiny random T5-family Hugging Face models and a T5-style tokenizer, built offline by the tests."""

from __future__ import annotations

from pathlib import Path

from fixtures import eager_hf_model, session_model_folder
from xtjax.tiny import EOS_SCALE, KINDS, make_t5_tokenizer, make_tiny_t5  # noqa: F401

PROMPTS = ["The quick brown fox.", "Der schnelle braune Fuchs springt über den faulen Hund.", "敏捷的棕色狐狸",
           "Hello world, this is a tiny corpus for a tiny tokenizer and more words.", "lazy dog"]


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
