"""Text-to-text forms of the tasks: example -> (input text, target text), and generated text -> prediction.

Kept apart from any model: an encoder-decoder reads the input and generates the target, a
decoder-only model would read input + target with the input masked from the loss. Each form
names its source; a task's card names its form (`TaskCard.text_to_text`). Upstream templates (google-research/multilingual-t5 `preprocessors.py` /
`tasks.py`, google-research/text-to-text-transfer-transformer `t5.data.preprocessors.glue` with
TFDS label names) are followed where they exist; where no upstream form exists the form says so.

A prediction the target vocabulary does not cover (a label outside the label set, a choice
that is not `choiceN`, an unparseable entity) is returned as None and scored as wrong; the
wrapping task counts them.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from xtjax.errors import ConfigError
from xtjax.tasks.card import Form

# TFDS multi_nli / xnli class ids: mT5's `process_mnli` / `process_xnli` target `as_string(label)`.
TFDS_NLI_NAMES = ("entailment", "neutral", "contradiction")
PAWS_NAMES = ("different_meaning", "paraphrase")  # multilingual_t5/tasks.py PAWS `label_names`
QQP_NAMES = ("not_duplicate", "duplicate")  # TFDS glue/qqp label names, as t5's glue preprocessor uses them
ENTITY_SEP = " $$ "  # multilingual_t5/evaluation/metrics.py `span_f1`: "TAG: entity $$ TAG: entity"


def form(task: str) -> Form:
  """The text-to-text form on a task's card."""
  from xtjax.tasks import registry

  found = registry.card(task).text_to_text
  if found is None:
    raise ConfigError(f"task {task!r} has no text-to-text form; tasks with one: {names()}")
  return found


def names() -> list[str]:
  """The tasks whose card has a text-to-text form, sorted."""
  from xtjax.tasks import registry

  return sorted(card.name for card in registry.cards() if card.text_to_text is not None)


def _label_parse(names_by_text: dict[str, str]):
  def parse(text: str, example) -> str | None:
    return names_by_text.get(text.strip())

  return parse


# ---- sentence pairs ------------------------------------------------------------------------------

def _nli(ex) -> tuple[str, str]:
  target = "" if ex.label is None else str(TFDS_NLI_NAMES.index(ex.label))
  return f"xnli: premise: {ex.text_a} hypothesis: {ex.text_b}", target


NLI = Form(
    "multilingual_t5/preprocessors.py process_mnli / process_xnli: 'xnli: premise: P hypothesis: H' -> "
    "the TFDS class id as a string (entailment 0, neutral 1, contradiction 2)",
    _nli, _label_parse({str(i): name for i, name in enumerate(TFDS_NLI_NAMES)}))


def _glue_pair(benchmark: str, keys: tuple[str, str], label_names: tuple[str, str]):
  def to_text(ex) -> tuple[str, str]:
    target = "" if ex.label is None else label_names[int(ex.label)]
    return f"{benchmark} {keys[0]}: {ex.text_a} {keys[1]}: {ex.text_b}", target

  return to_text


PAWS = Form(
    "multilingual_t5/tasks.py PAWS: t5 glue(benchmark_name='paws', feature_names=[sentence1, sentence2]) -> "
    "'paws sentence1: A sentence2: B' -> different_meaning | paraphrase",
    _glue_pair("paws", ("sentence1", "sentence2"), PAWS_NAMES),
    _label_parse({name: str(i) for i, name in enumerate(PAWS_NAMES)}))
QQP = Form(
    "t5 glue(benchmark_name='qqp'), features sorted: 'qqp question1: A question2: B' -> not_duplicate | duplicate",
    _glue_pair("qqp", ("question1", "question2"), QQP_NAMES),
    _label_parse({name: str(i) for i, name in enumerate(QQP_NAMES)}))


def _toy(ex) -> tuple[str, str]:
  text, label = ex
  return f"toy_cls sentence: {text}", ("yes" if label else "no")


TOY = Form("xtjax (synthetic task; t5 glue style): 'toy_cls sentence: S' -> no | yes", _toy,
           _label_parse({"no": 0, "yes": 1}))


# ---- extractive QA -------------------------------------------------------------------------------

def _qa(ex) -> tuple[str, str]:
  # mT5 trains on the first answer; an unanswerable SQuAD 2.0 question targets the empty text
  # (xtjax's choice: mT5 has no SQuAD 2.0 task).
  target = ex.answers[0][0] if ex.answers and not ex.is_impossible else ""
  return f"question: {ex.question} context: {ex.context}", target


QA = Form(
    "multilingual_t5/preprocessors.py xquad: 'question: Q context: C' -> the first answer. Unlike upstream, "
    "punctuation is not padded with spaces, so answers score against the unpadded official references",
    _qa, lambda text, ex: text.strip())


# ---- multiple choice -----------------------------------------------------------------------------

def _choices(ex) -> tuple[str, str]:
  parts = [f"choice{i + 1}: {c}" for i, c in enumerate(ex.choices)]
  ctx = f" premise: {ex.context}" if ex.context else ""
  target = "" if ex.label is None else f"choice{ex.label + 1}"
  return " ".join(parts) + ctx + f" question: {ex.question}", target


def multiple_choice(task: str) -> Form:
  """The COPA form under `task`'s name (every multiple-choice task)."""
  def to_text(ex) -> tuple[str, str]:
    body, target = _choices(ex)
    return f"{task} {body}", target

  def parse(text: str, ex) -> int | None:
    text = text.strip()
    if text.startswith("choice") and text[6:].isdigit() and 1 <= int(text[6:]) <= len(ex.choices):
      return int(text[6:]) - 1
    return None

  return Form("t5 glue(benchmark_name='copa') on TFDS super_glue/copa, features sorted: "
              "'copa choice1: A choice2: B premise: P question: cause' -> choice1 | choice2; other multiple-choice "
              "tasks use the same form with their own name and choices (xtjax's generalisation)", to_text, parse)



# ---- tagging -------------------------------------------------------------------------------------

def entities(tokens: Sequence[str], tags: Sequence[str]) -> list[tuple[str, str]]:
  """(type, text) of each IOB2 entity, in order."""
  out, start, kind = [], None, None
  for i, tag in enumerate(list(tags) + ["O"]):
    if start is not None and not (tag.startswith("I-") and tag[2:] == kind):
      out.append((kind, " ".join(tokens[start:i])))
      start, kind = None, None
    if tag.startswith("B-") or (tag.startswith("I-") and start is None):
      start, kind = i, tag[2:]
  return out


def _ner(ex) -> tuple[str, str]:
  target = "" if ex.labels is None else ENTITY_SEP.join(f"{k}: {t}" for k, t in entities(ex.tokens, ex.labels))
  return f"ner: {' '.join(ex.tokens)}", target


def parse_entities(text: str, tokens: Sequence[str]) -> tuple[str, ...] | None:
  """'TAG: entity $$ ...' -> IOB2 tags on `tokens`: each entity is placed at its first unused
  occurrence at or after the previous entity. None when a piece is malformed or not in the sentence."""
  tags = ["O"] * len(tokens)
  cursor = 0
  for piece in (p.strip() for p in text.split(ENTITY_SEP.strip())):
    if not piece:
      continue
    kind, sep, words = (s.strip() for s in piece.partition(":"))
    span = words.split()
    if not sep or not kind or not span:
      return None
    found = next((s for s in list(range(cursor, len(tokens))) + list(range(0, cursor))
                  if list(tokens[s:s + len(span)]) == span and all(t == "O" for t in tags[s:s + len(span)])), None)
    if found is None:
      return None
    tags[found:found + len(span)] = [f"B-{kind}"] + [f"I-{kind}"] * (len(span) - 1)
    cursor = found + len(span)
  return tuple(tags)


NER = Form(
    "multilingual_t5/evaluation/metrics.py span_f1 target layout: 'ner: w1 w2 ...' -> 'TAG: entity $$ TAG: entity' "
    "(empty when the sentence has none); the entities are placed back on the words for seqeval",
    _ner, lambda text, ex: parse_entities(text, ex.tokens))


def tag_sequence(task: str) -> Form:
  """One tag per word under the prefix `task` (UD-POS: 'pos', CCG)."""
  def to_text(ex) -> tuple[str, str]:
    return f"{task}: {' '.join(ex.tokens)}", "" if ex.labels is None else " ".join(ex.labels)

  def parse(text: str, ex) -> tuple[str, ...] | None:
    tags = text.split()
    return tuple(tags) if len(tags) == len(ex.tokens) else None

  return Form("xtjax (no upstream mT5 form): 'TASK: w1 w2 ...' -> one tag per word, space-separated; "
              "a wrong number of tags is an invalid output", to_text, parse)



# ---- span corruption (MLM in the mixed setting) --------------------------------------------------

def sentinel(i: int) -> str:
  return f"<extra_id_{i}>"  # T5 / mT5 sentinel tokens, counting down from the vocabulary's end


def span_corruption(words: Sequence[str], seed: int, noise_density: float = 0.15, mean_span: float = 3.0
                    ) -> tuple[str, str]:
  """T5's `span_corruption` (random_spans_noise_mask: ~15% noise in spans of mean length 3, each
  span replaced by one sentinel in the input and listed after it in the target), on words rather
  than sentencepiece tokens so that the form stays independent of the tokenizer."""
  n = len(words)
  if n < 2:
    return " ".join(words), ""
  num_noise = min(max(int(round(n * noise_density)), 1), n - 1)
  num_spans = max(min(int(round(num_noise / mean_span)), num_noise, n - num_noise), 1)
  rng = np.random.default_rng(seed)

  def segments(total: int) -> list[int]:  # `total` split into num_spans positive lengths, randomly
    cuts = np.sort(rng.choice(np.arange(1, total), num_spans - 1, replace=False)) if num_spans > 1 else []
    return np.diff(np.concatenate([[0], cuts, [total]])).astype(int).tolist()

  keep, noise = segments(n - num_noise), segments(num_noise)
  inputs, targets, pos = [], [], 0
  for i, (k, m) in enumerate(zip(keep, noise)):
    inputs += list(words[pos:pos + k]) + [sentinel(i)]
    targets += [sentinel(i)] + list(words[pos + k:pos + k + m])
    pos += k + m
  return " ".join(inputs), " ".join(targets + [sentinel(num_spans)])


def _mlm(ex) -> tuple[str, str]:
  return span_corruption(ex.text.split(), zlib.crc32(ex.guid.encode("utf-8")))


def _mlm_parse(text: str, ex):
  """(predicted words, target words), position by position, for the MLM task's accuracy."""

  target = np.array(_mlm(ex)[1].split(), dtype=object)
  predicted = (text.split() + [""] * len(target))[:len(target)]
  return np.array(predicted, dtype=object), target


MLM = Form(
    "t5 preprocessors.span_corruption / random_spans_noise_mask (mT5 pre-training on mC4), applied to words: "
    "'w1 <extra_id_0> w4 ...' -> '<extra_id_0> w2 w3 <extra_id_1> ...'; scored as word accuracy", _mlm, _mlm_parse)
