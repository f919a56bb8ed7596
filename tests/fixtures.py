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


def save_model_folder(model, tokenizer, folder, with_tokenizer: bool = True):
  """Saves a tiny transformers model (eval mode) and, if asked, its tokenizer; returns the folder."""
  from pathlib import Path

  model.eval()
  model.save_pretrained(str(folder))
  if with_tokenizer:
    tokenizer.save_pretrained(str(folder))
  return Path(folder)


def fixed_unigram_tokenizer(specials, unk: str, single: str, pair: str, **fast_kwargs):
  """A sentencepiece-style Unigram tokenizer over CORPUS with the given special tokens first (ids 0..).

  Built from a fixed vocabulary (whole words, then single characters) rather than trained, because
  the Unigram trainer breaks ties differently from run to run and the tests need fixed token ids.
  `single` / `pair` are the post-processing templates; `fast_kwargs` name the special tokens' roles.
  """
  from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
  from transformers import PreTrainedTokenizerFast

  words = sorted({"\u2581" + w for s in CORPUS for w in s.split()})
  chars = sorted({c for s in CORPUS for c in s if not c.isspace()} | {"\u2581"})
  vocab = [(t, 0.0) for t in specials]
  vocab += [(w, -2.0 - 0.001 * i) for i, w in enumerate(words)]
  vocab += [(c, -8.0 - 0.001 * i) for i, c in enumerate(chars) if c not in words]
  tok = Tokenizer(models.Unigram(vocab, unk_id=list(specials).index(unk)))
  tok.normalizer = normalizers.NFKC()
  tok.pre_tokenizer = pre_tokenizers.Metaspace()
  tok.decoder = decoders.Metaspace()
  used = [t for t in specials if t in (single + " " + pair).split()]
  tok.post_processor = processors.TemplateProcessing(single=single, pair=pair,
                                                     special_tokens=[(t, list(specials).index(t)) for t in used])
  return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token=unk, **fast_kwargs)
