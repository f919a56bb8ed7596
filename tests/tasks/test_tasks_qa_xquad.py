"""Gold answers of the real XQuAD files survive featurisation and post-processing (skipped when
/work/shared/data/xquad is absent).

Each language gets a sentencepiece-like Unigram tokenizer (NFKC, "▁" metaspace, pieces split at
punctuation and digits as sentencepiece's split_by_unicode_script / split_by_number do) trained
on a quarter of its contexts. Pieces are kept short (4 characters): a piece that runs across an
answer boundary, common in unsegmented Thai and Chinese, makes that answer unrecoverable whatever
the featurisation does.
"""

import functools
from pathlib import Path

import numpy as np
import pytest

from xtjax.data.formats import read_squad
from xtjax.tasks import registry
from xtjax.tasks.base import FeatureSettings

XQUAD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "xquad"
LANGS = ("ar", "de", "el", "en", "es", "hi", "ro", "ru", "th", "tr", "vi", "zh")
SETTINGS = FeatureSettings(max_length=384, doc_stride=128, max_query_length=64, max_answer_length=384)


def sentencepiece_like(texts, vocab_size=2000, max_piece_length=4):
  from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
  from transformers import PreTrainedTokenizerFast

  tok = Tokenizer(models.Unigram())
  tok.normalizer = normalizers.NFKC()
  tok.pre_tokenizer = pre_tokenizers.Sequence(
      [pre_tokenizers.Metaspace(), pre_tokenizers.Punctuation(), pre_tokenizers.Digits()])
  tok.decoder = decoders.Metaspace()
  tok.train_from_iterator(texts, trainer=trainers.UnigramTrainer(
      vocab_size=vocab_size, max_piece_length=max_piece_length,
      special_tokens=["<s>", "<pad>", "</s>", "<unk>"], unk_token="<unk>"))
  tok.post_processor = processors.TemplateProcessing(
      single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
  return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                 sep_token="</s>", cls_token="<s>", pad_token="<pad>")


@functools.lru_cache(maxsize=None)
def _examples(lang):
  path = XQUAD / f"xquad.{lang}.json"
  if not path.exists():
    pytest.skip(f"{path} is not available")
  return read_squad(path).examples


@pytest.mark.slow
@pytest.mark.parametrize("lang", LANGS)
def test_xquad_gold_answers_are_recoverable(lang):
  examples = _examples(lang)
  assert len(examples) == 1190
  contexts = list(dict.fromkeys(ex.context for ex in examples))
  tokenizer = sentencepiece_like(contexts[::4])
  task = registry.get("xquad")
  features = task.featurize(examples, tokenizer, SETTINGS)
  stats = task.stats(examples, features)
  print(f"xquad.{lang}: {stats}")
  assert stats["answers"] == 1190 and stats["answers_outside_windows"] == 0
  assert stats["recoverable_rate"] >= 0.99, stats
  start = np.zeros(features.arrays["input_ids"].shape, np.float32)
  end = np.zeros_like(start)
  rows = np.arange(len(features))
  start[rows, features.arrays["start_positions"]] = 10.0
  end[rows, features.arrays["end_positions"]] = 10.0
  predictions = task.predict((start, end), features, examples, SETTINGS)
  exact = sum(predictions.answers[ex.guid] == ex.answers[0][0] for ex in examples)
  assert exact == stats["recoverable_answers"]  # one gold answer per XQuAD question
  assert task.score(predictions, examples, lang)["exact_match"] >= 99.0
