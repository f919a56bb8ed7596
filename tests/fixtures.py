"""Test fixtures: re-exported from xtjax.tiny so that demos and tests build the same tiny models."""

from xtjax.tiny import *  # noqa: F401,F403
from xtjax.tiny import CORPUS, make_tiny_hf, make_unigram_tokenizer, make_wordpiece_tokenizer  # noqa: F401


def write(folder, name: str, content):
  """Writes text, a JSON document, or a list of objects as JSON lines (names ending .jsonl)."""
  import json
  from pathlib import Path

  path = Path(folder) / name
  path.parent.mkdir(parents=True, exist_ok=True)
  if isinstance(content, str):
    text = content
  elif name.endswith(".jsonl"):
    text = "".join(json.dumps(obj, ensure_ascii=False) + "\n" for obj in content)
  else:
    text = json.dumps(content, ensure_ascii=False)
  path.write_text(text, encoding="utf-8")
  return path


# Registered task names, one per head type (read_run resolves head types through the task registry).
MULTITASK_HEADS = {"xnli": ("classification", 3), "panx": ("tagging", 7), "xquad": ("span", 2),
                   "xcopa": ("multiple_choice", 2), "toy_cls": ("classification", 2)}


def session_model_folder(tmp_path_factory, name: str, make):
  """A tiny model folder built once per test session by `make(folder)` (shared by every test module)."""
  folder = tmp_path_factory.getbasetemp() / name
  if not (folder / "config.json").exists():
    make(folder)
  return folder


def eager_hf_model(folder, class_name: str):
  """A saved transformers model of class `class_name`, eager attention, in eval mode (the reference)."""
  import transformers as tf

  return getattr(tf, class_name).from_pretrained(str(folder), attn_implementation="eager").eval()


def flat_paths(tree, prefix: str = "") -> dict:
  """{'a/b/c': leaf} of a nested dict (pure params), for comparing parameter trees by path."""
  out = {}
  for k, v in tree.items():
    out.update(flat_paths(v, f"{prefix}{k}/") if isinstance(v, dict) else {f"{prefix}{k}": v})
  return out
