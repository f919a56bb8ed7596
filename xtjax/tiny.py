"""Tiny random Hugging Face models and tokenizers, built offline (tests, demos, smoke runs).

Needs torch (the `dev` extra) for the model builders; the tokenizers need only `tokenizers`.
"""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "El rápido zorro marrón salta sobre el perro perezoso.",
    "敏捷的棕色狐狸跳过了懒狗。",
    "สุนัขจิ้งจอกสีน้ำตาลกระโดดข้ามสุนัขขี้เกียจ",
    "الثعلب البني السريع يقفز فوق الكلب الكسول",
    "Быстрая коричневая лиса прыгает через ленивую собаку.",
    "Hello world, this is a tiny corpus for a tiny tokenizer.",
    "Cross-lingual transfer after intermediate-task training.",
    "Question answering, natural language inference and tagging.",
]


def make_unigram_tokenizer(vocab_size: int = 300):
  """An XLM-R-like sentencepiece-style Unigram tokenizer: <s>=0 <pad>=1 </s>=2 <unk>=3 ... <mask>."""
  from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
  from transformers import PreTrainedTokenizerFast

  tok = Tokenizer(models.Unigram())
  tok.normalizer = normalizers.NFKC()
  tok.pre_tokenizer = pre_tokenizers.Metaspace()
  tok.decoder = decoders.Metaspace()
  trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                                    unk_token="<unk>")
  tok.train_from_iterator(CORPUS * 3, trainer=trainer)
  tok.post_processor = processors.TemplateProcessing(
      single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
      special_tokens=[("<s>", 0), ("</s>", 2)])
  return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                 sep_token="</s>", cls_token="<s>", pad_token="<pad>", mask_token="<mask>")


def make_wordpiece_tokenizer():
  """A BERT-like WordPiece tokenizer: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4, then characters and words."""
  from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
  from transformers import PreTrainedTokenizerFast

  vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
  words = sorted({w.lower().strip(".,") for s in CORPUS for w in s.split()})
  chars = sorted({c for s in CORPUS for c in s.lower() if not c.isspace()})
  for c in chars:
    vocab += [c, "##" + c]
  vocab += [w for w in words if w not in vocab][:60]
  tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(dict.fromkeys(vocab))}, unk_token="[UNK]"))
  tok.normalizer = normalizers.BertNormalizer(lowercase=True)
  tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
  tok.decoder = decoders.WordPiece()
  tok.post_processor = processors.TemplateProcessing(
      single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
      special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
  return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", sep_token="[SEP]", cls_token="[CLS]",
                                 pad_token="[PAD]", mask_token="[MASK]")


def make_tiny_hf(folder: Path, kind: str = "xlm-roberta", seed: int = 0, head: str | None = None,
                 with_tokenizer: bool = True, **overrides) -> Path:
  """Saves a tiny random transformers model of `kind` (bert | roberta | xlm-roberta) with `save_pretrained`.

  `head`: None for the base model, or "mlm" to save the masked-LM model (its head is then ignored on import).
  """
  import torch
  import transformers as tf

  tok = make_wordpiece_tokenizer() if kind == "bert" else make_unigram_tokenizer()
  common = dict(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=37, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
  if kind == "bert":
    cfg = tf.BertConfig(max_position_embeddings=64, pad_token_id=0, **common)
  elif kind == "roberta":
    cfg = tf.RobertaConfig(max_position_embeddings=66, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                           type_vocab_size=1, layer_norm_eps=1e-5, **common)
  elif kind == "xlm-roberta":
    cfg = tf.XLMRobertaConfig(max_position_embeddings=66, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                              type_vocab_size=1, layer_norm_eps=1e-5, **common)
  else:
    raise ValueError(kind)
  for k, v in overrides.items():
    setattr(cfg, k, v)
  torch.manual_seed(seed)
  model = tf.AutoModelForMaskedLM.from_config(cfg) if head == "mlm" else tf.AutoModel.from_config(cfg)
  # Random (not zero) biases and layer-norm parameters so that a mapping mistake cannot hide.
  with torch.no_grad():
    for name, p in model.named_parameters():
      if name.endswith("bias") or "LayerNorm" in name:
        p.add_(0.1 * torch.randn_like(p))
  return save_model_folder(model, tok, folder, with_tokenizer)


# T5-family kind -> (transformers class names, config overrides). "t5" is T5 v1.0 (ReLU, tied and rescaled head);
# "t5-v1_1" is gated-GELU with an untied head under model_type t5.
EOS_SCALE = {"mt5": 2.0, "t5": 3.0, "t5-v1_1": 2.0, "umt5": 1.0}
KINDS = {
    "mt5": ("MT5Config", "MT5ForConditionalGeneration", dict(feed_forward_proj="gated-gelu", tie=False)),
    "t5": ("T5Config", "T5ForConditionalGeneration", dict(feed_forward_proj="relu", tie=True)),
    "t5-v1_1": ("T5Config", "T5ForConditionalGeneration", dict(feed_forward_proj="gated-silu", tie=False)),
    "umt5": ("UMT5Config", "UMT5ForConditionalGeneration", dict(feed_forward_proj="gated-gelu", tie=False)),
}


def save_model_folder(model, tokenizer, folder, with_tokenizer: bool = True):
  """Saves a tiny transformers model (eval mode) and, if asked, its tokenizer; returns the folder."""
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
  hf_cfg = getattr(tf, cfg_name)(
      vocab_size=len(tok), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_decoder_layers=2, num_heads=4,
      relative_attention_num_buckets=8, relative_attention_max_distance=20, dropout_rate=0.0,
      feed_forward_proj=opts["feed_forward_proj"], tie_word_embeddings=opts["tie"], pad_token_id=0, eos_token_id=1,
      decoder_start_token_id=0)
  torch.manual_seed(seed)
  model = getattr(tf, model_name)(hf_cfg)
  with torch.no_grad():
    if not opts["tie"] and model.lm_head.weight is model.shared.weight:
      # transformers >= 5 ties every T5-family model built from a config; real mT5 heads are separate.
      model.lm_head.weight = torch.nn.Parameter(torch.randn_like(model.shared.weight))
    for name, p in model.named_parameters():
      if "layer_norm" in name:
        p.add_(0.2 * torch.randn_like(p))
    head = model.shared.weight if opts["tie"] else model.lm_head.weight
    head[hf_cfg.eos_token_id] *= EOS_SCALE[kind]
  return save_model_folder(model, tok, folder, with_tokenizer)


def main(argv=None) -> int:
  import argparse

  p = argparse.ArgumentParser(prog="python -m xtjax.tiny", description="save a tiny random HF model with tokenizer")
  p.add_argument("--kind", default="xlm-roberta", choices=["bert", "roberta", "xlm-roberta", *KINDS])
  p.add_argument("--out", required=True)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--data", default=None, help="also write tiny upstream-format XTREME data and the toy_cls task's "
                 "files (DATA/toy) to this folder")
  args = p.parse_args(argv)
  make = make_tiny_t5 if args.kind in KINDS else make_tiny_hf
  make(Path(args.out), args.kind, seed=args.seed)
  print(f"saved a tiny random {args.kind} model to {args.out}")
  if args.data:
    write_tiny_xtreme(Path(args.data), seed=args.seed)
    print(f"wrote tiny MNLI / XNLI / Tatoeba files and toy_cls files (toy/) to {args.data}")
  return 0


# ---------------------------------------------------------------------------------------------
# Tiny upstream-format data for offline pipeline demos and end-to-end tests.

_NLI_WORDS = {
    "en": ("the fox runs", "a dog sleeps", "the cat eats", "a bird sings", "the man reads", "a child plays",
           "the woman walks", "a horse jumps"),
    "de": ("der fuchs läuft", "ein hund schläft", "die katze isst", "ein vogel singt", "der mann liest",
           "ein kind spielt", "die frau geht", "ein pferd springt"),
    "es": ("el zorro corre", "un perro duerme", "el gato come", "un pájaro canta", "el hombre lee",
           "un niño juega", "la mujer camina", "un caballo salta"),
}
_NEG = {"en": "not", "de": "nicht", "es": "no"}
_L3 = {"de": "deu", "es": "spa"}


def _nli_rows(rng, lang: str, n: int):
  """(premise, hypothesis, label): the same clause -> entailment, negated -> contradiction,
  another clause -> neutral. Learnable by a tiny model; a true multilingual model transfers it."""
  clauses = _NLI_WORDS[lang]
  rows = []
  for i in range(n):
    a = clauses[int(rng.integers(len(clauses)))]
    label = ("entailment", "contradiction", "neutral")[i % 3]
    if label == "entailment":
      h = a
    elif label == "contradiction":
      h = f"{a} {_NEG[lang]}"
    else:
      h = clauses[(clauses.index(a) + 1 + int(rng.integers(len(clauses) - 1))) % len(clauses)]
    rows.append((f"{a} today .", f"{h} .", label))
  return rows


def write_tiny_xtreme(folder: Path, n_train: int = 240, n_eval: int = 60, seed: int = 0) -> Path:
  """Writes tiny files in the upstream formats: MNLI (GLUE TSV), XNLI-1.0 test TSV (en, de, es)
  and Tatoeba (deu, spa); and the toy_cls task's jsonl files in `folder/toy`. Returns `folder`."""
  import numpy as np

  from xtjax.tasks.synthetic import write_toy_data

  folder = Path(folder)
  rng = np.random.default_rng(seed)
  (folder / "mnli").mkdir(parents=True, exist_ok=True)
  header = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
            "sentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n")
  for name, n in (("train.tsv", n_train), ("dev_matched.tsv", n_eval)):
    with open(folder / "mnli" / name, "w", encoding="utf-8") as f:
      f.write(header)
      for i, (p, h, y) in enumerate(_nli_rows(rng, "en", n)):
        f.write(f"{i}\t{i}\t{i}e\tfiction\t-\t-\t-\t-\t{p}\t{h}\t{y}\t{y}\n")
  (folder / "xnli").mkdir(exist_ok=True)
  with open(folder / "xnli" / "xnli.test.tsv", "w", encoding="utf-8") as f:
    f.write("language\tgold_label\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
            "sentence2_parse\tsentence1\tsentence2\tpromptID\tpairID\tgenre\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\n")
    for lang in ("en", "de", "es"):
      for i, (p, h, y) in enumerate(_nli_rows(rng, lang, n_eval)):
        f.write(f"{lang}\t{y}\t-\t-\t-\t-\t{p}\t{h}\t{i}\t{i}\tfiction\t{y}\t{y}\t{y}\t{y}\t{y}\n")
  (folder / "tatoeba").mkdir(exist_ok=True)
  for lang, l3 in _L3.items():
    pairs = list(zip(_NLI_WORDS[lang], _NLI_WORDS["en"]))
    with open(folder / "tatoeba" / f"tatoeba.{l3}-eng.{l3}", "w", encoding="utf-8") as f:
      f.writelines(f"{x} .\n" for x, _ in pairs)
    with open(folder / "tatoeba" / f"tatoeba.{l3}-eng.eng", "w", encoding="utf-8") as f:
      f.writelines(f"{y} .\n" for _, y in pairs)
  write_toy_data(folder / "toy", seed=seed)
  return folder


if __name__ == "__main__":
  raise SystemExit(main())
