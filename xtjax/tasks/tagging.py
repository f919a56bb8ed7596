"""Token tagging: UD-POS and PAN-X (XTREME) and CCG supertagging (Phang et al.'s intermediate task).

Words are tokenised with the fast tokenizer's `is_split_into_words=True`; a word's label sits on
its first sub-word, every other sub-word and special token carries -100 (XTREME's
`convert_examples_to_features`). A word the tokenizer turns into nothing (e.g. a lone zero-width
character) is replaced by the unknown token, as XTREME does. Words cut off by truncation get no
position; they are predicted as the task's default label ("O" for PAN-X, else the first label)
and counted in `Features.stats["words_truncated"]`.

Label sets (head ids):
- udpos: the 17 UD UPOS tags in alphabetical order (XTREME's udpos labels.txt, jiant's UDPOS).
- panx: O, B-PER, I-PER, B-ORG, I-ORG, B-LOC, I-LOC (the Hugging Face `wikiann` ClassLabel order).
- ccg: built from the training data: the sorted set of supertags of `read("train", ...)`, or the
  file `files["labels"]` (one tag per line) when the source names one. Sorting makes the ids a
  function of the training data alone; `set_labels` restores them (e.g. from a checkpoint) and
  the feature cache stores them. Dev/test tags unseen in training get label -100 and count as
  errors in the score (`Features.stats["unknown_labels"]`).
Scores: seqeval span F1/precision/recall for udpos and panx (XTREME's evaluate.py), token
accuracy for ccg (Phang et al.).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xtjax.data.formats import TaggingExample, read_ccgbank_auto, read_conllu, read_panx, read_supertags
from xtjax.data.formats.common import iter_lines
from xtjax.data.formats.conll import UPOS_TAGS
from xtjax.data.sources import DataSource, HubDefaults, local_path, source_rows, with_hub_defaults
from xtjax.errors import ConfigError, DataError
from xtjax.metrics import accuracy, tagging_scores
from xtjax.tasks import featurize as fz
from xtjax.tasks.base import Features, FeatureSettings, Task
from xtjax.tasks import t2t_forms as forms
from xtjax.tasks.card import BenchmarkEntry, TaskCard, langs
from xtjax.tasks.registry import register
from xtjax.tasks.source_table import ALL, DEV, EN, TVT, XTREME_SHA, SourceRow
from xtjax.tasks.submission_formats import TAGS, Submission

UPOS_LABELS = tuple(sorted(UPOS_TAGS))
PANX_LABELS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
# Hub ClassLabel names (universal_dependencies upos; wikiann ner_tags). google/xtreme's udpos
# `pos_tags` use the alphabetical UPOS_LABELS.
HUB_UPOS_NAMES = ("NOUN", "PUNCT", "ADP", "NUM", "SYM", "SCONJ", "ADJ", "PART", "DET", "CCONJ", "PROPN", "PRON",
                  "X", "_", "ADV", "INTJ", "VERB", "AUX")
HUB_PANX_NAMES = PANX_LABELS


@dataclasses.dataclass
class TaggingExtra:
  """Post-processing data: `word_starts[i][w]` is the position of word w's first sub-word in
  feature i, or -1 when truncation cut the word off."""

  word_starts: list[np.ndarray]


def read_udpos_file(path: Path) -> list[TaggingExample]:
  # XTREME converts CoNLL-U with --replace_subtokens_with_fused_forms.
  return read_conllu(path, multiword="fused").examples


def read_panx_file(path: Path) -> list[TaggingExample]:
  return read_panx(path).examples


def read_ccg_file(path: Path) -> list[TaggingExample]:
  """CCGbank AUTO derivations (`ID=` headers) or `token<TAB>supertag` lines."""
  first = next((line for _, line in iter_lines(path) if line.strip()), "")
  return (read_ccgbank_auto(path) if first.startswith("ID=") else read_supertags(path)).examples


def _hub_tags(row: Mapping, keys: Sequence[str], names: Sequence[str], where: str, i: int) -> list[str]:
  tags = fz.field(row, keys, where, i, list)
  out = []
  for tag in tags:
    if isinstance(tag, int) and not isinstance(tag, bool):
      if not 0 <= tag < len(names):
        raise DataError(f"{where} row {i} [{keys[0]}]: tag id {tag} is out of range")
      tag = names[tag]
    out.append(str(tag))
  return out


def udpos_row(row: Mapping, i: int, where: str) -> TaggingExample:
  """google/xtreme udpos rows (tokens, pos_tags ids) or universal_dependencies rows (tokens, upos
  ids); multiword-token rows tagged '_' are dropped."""
  tokens = fz.field(row, "tokens", where, i, list)
  if "pos_tags" in row:
    tags = _hub_tags(row, ("pos_tags",), UPOS_LABELS, where, i)
  else:
    tags = _hub_tags(row, ("upos", "tags"), HUB_UPOS_NAMES, where, i)
  if len(tags) != len(tokens):
    raise DataError(f"{where} row {i}: {len(tokens)} tokens but {len(tags)} tags")
  kept = [(t, g) for t, g in zip(tokens, tags) if g != "_"]
  return TaggingExample(fz.row_guid(row, ("idx", "id"), i), tuple(t for t, _ in kept), tuple(g for _, g in kept))


def panx_row(row: Mapping, i: int, where: str) -> TaggingExample:
  """wikiann rows (tokens, ner_tags ids) or any rows with tokens and string tags."""
  tokens = fz.field(row, "tokens", where, i, list)
  tags = _hub_tags(row, ("ner_tags", "tags"), HUB_PANX_NAMES, where, i)
  if len(tags) != len(tokens):
    raise DataError(f"{where} row {i}: {len(tokens)} tokens but {len(tags)} tags")
  return TaggingExample(fz.row_guid(row, ("id",), i), tuple(tokens), tuple(tags))


def ccg_row(row: Mapping, i: int, where: str) -> TaggingExample:
  tokens = fz.field(row, ("tokens", "words"), where, i, list)
  tags = [str(t) for t in fz.field(row, ("tags", "supertags"), where, i, list)]
  if len(tags) != len(tokens):
    raise DataError(f"{where} row {i}: {len(tokens)} tokens but {len(tags)} tags")
  return TaggingExample(fz.row_guid(row, ("id",), i), tuple(tokens), tuple(tags))


class TaggingTask(Task):
  """One label per word with the `tagging` head; `labels` [N, L] with -100 off first sub-words."""

  head_type = "tagging"

  def __init__(self, name: str, labels: Sequence[str] | None, local_reader, row_reader, metric: str,
               hub: HubDefaults | None = None):
    self.name = name
    self.labels = tuple(labels) if labels is not None else None
    self.build_labels = labels is None
    self.local_reader = local_reader
    self.row_reader = row_reader
    self.metric = metric
    self.main_metric = "f1" if metric == "seqeval" else "accuracy"
    self.hub = hub

  @property
  def num_labels(self) -> int:
    return len(self._vocabulary())

  def _vocabulary(self) -> tuple[str, ...]:
    if self.labels is None:
      raise ConfigError(f"task {self.name!r}: the label set is built from the training data; read the train "
                        f"split first (or call set_labels / name files.labels)")
    return self.labels

  @property
  def default_label(self) -> str:
    vocabulary = self._vocabulary()
    return "O" if "O" in vocabulary else vocabulary[0]

  def set_labels(self, labels: Sequence[str]) -> None:
    if len(set(labels)) != len(labels) or not labels:
      raise ConfigError(f"task {self.name!r}: labels must be distinct and non-empty")
    self.labels = tuple(labels)

  def fingerprint(self) -> dict[str, Any]:
    return {"task": self.name, "labels": list(self.labels) if self.labels is not None else None}

  def export_state(self) -> dict[str, Any]:
    """What the feature cache (and a checkpoint) must keep to use the same label ids later."""
    return {"labels": list(self.labels)} if self.labels is not None else {}

  def restore_state(self, state: Mapping[str, Any]) -> None:
    if state.get("labels"):
      self.set_labels(state["labels"])

  # ---- data -----------------------------------------------------------------------------------

  def read(self, split: str, language: str, source: DataSource) -> list[TaggingExample]:
    if source.kind == "local":
      examples = fz.limited(self.local_reader(local_path(source, split, language, self.name)), source)
    else:
      source = with_hub_defaults(source, self.hub)
      rows, where = source_rows(source, split, language, self.name)
      examples = [self.row_reader(row, i, where) for i, row in enumerate(rows)]
    if self.build_labels:
      self._labels_from(split, source, examples)
    return examples

  def _labels_from(self, split: str, source: DataSource, examples: Sequence[TaggingExample]) -> None:
    if source.kind == "local" and "labels" in source.files:
      path = Path(source.files["labels"]).expanduser()
      self.set_labels([line.strip() for _, line in iter_lines(path) if line.strip()])
    elif split == "train":
      tags = sorted({t for e in examples for t in (e.labels or ())})
      if not tags:
        raise DataError(f"task {self.name!r}: the training data has no tags to build the label set from")
      self.set_labels(tags)

  def source_files(self, split: str, language: str, source: DataSource) -> list[Path]:
    if source.kind != "local":
      return []
    files = [local_path(source, split, language, self.name)]
    if self.build_labels and "labels" in source.files:
      files.append(Path(source.files["labels"]).expanduser())
    return files

  def featurize(self, examples: Sequence[TaggingExample], tokenizer, settings: FeatureSettings) -> Features:
    fz.require_fast(tokenizer, self.name)
    vocabulary = self._vocabulary()
    index = {label: i for i, label in enumerate(vocabulary)}
    words = [list(e.tokens) for e in examples]
    arrays, truncated, encodings = fz.encode(tokenizer, words, None, settings.max_length, split_into_words=True,
                                             keep_encodings=True)
    empty = [i for i, enc in enumerate(encodings) if _has_empty_words(enc, len(words[i]), truncated[i])]
    if empty:  # words with no sub-word at all: retokenise them as the unknown token (XTREME)
      for i in empty:
        words[i] = _unk_empty_words(tokenizer, words[i])
      fixed, fixed_truncated, fixed_encodings = fz.encode(tokenizer, [words[i] for i in empty], None,
                                                          settings.max_length, split_into_words=True,
                                                          keep_encodings=True)
      for j, i in enumerate(empty):
        for key in arrays:
          arrays[key][i] = fixed[key][j]
        truncated[i], encodings[i] = fixed_truncated[j], fixed_encodings[j]
    labels = np.full((len(examples), settings.max_length), fz.IGNORE, np.int32)
    starts, lost, unknown = [], 0, 0
    for i, (example, enc) in enumerate(zip(examples, encodings)):
      first = first_subword_positions(enc.word_ids, len(example.tokens))
      starts.append(first)
      lost += int((first < 0).sum())
      if example.labels is None:
        continue
      for w, pos in enumerate(first):
        if pos < 0:
          continue
        tag = example.labels[w]
        if tag in index:
          labels[i, pos] = index[tag]
        elif self.build_labels:
          unknown += 1
        else:
          raise DataError(f"task {self.name!r}: example {example.guid!r} word {w} has tag {tag!r}, "
                          f"not one of {list(vocabulary)}")
    arrays["labels"] = labels
    stats = {"truncated": int(truncated.sum()), "words": sum(len(e.tokens) for e in examples),
             "words_truncated": lost, "words_unk_replaced": len(empty), "unknown_labels": unknown}
    return Features(arrays, np.arange(len(examples)), TaggingExtra(starts), stats)

  def stats(self, examples, features: Features) -> dict[str, Any]:
    return fz.basic_stats(examples, features, [t for e in examples for t in (e.labels or ())])

  # ---- evaluation -----------------------------------------------------------------------------

  def predict(self, outputs, features: Features, examples, settings: FeatureSettings) -> list[tuple[str, ...]]:
    """Logits [N, L, K] -> one tag per word; words without a position get the default label."""
    vocabulary, default = self._vocabulary(), self.default_label
    ids = np.asarray(outputs).argmax(-1)
    per_feature = []
    for row, first in zip(ids, features.extra.word_starts):
      per_feature.append(tuple(vocabulary[row[p]] if p >= 0 else default for p in first))
    return fz.scatter_by_example(per_feature, features, len(examples))

  def score(self, predictions: Sequence[Sequence[str]], examples, language: str) -> dict[str, float]:
    gold = [e.labels for e in examples]
    if any(g is None for g in gold):
      raise DataError(f"task {self.name!r} ({language}): unlabelled examples cannot be scored")
    if self.metric == "seqeval":
      return tagging_scores(predictions, gold)
    for i, (p, g) in enumerate(zip(predictions, gold)):
      if len(p) != len(g):
        raise DataError(f"task {self.name!r}: sentence {i} has {len(p)} predicted tags for {len(g)} words")
    return {"accuracy": accuracy([t for p in predictions for t in p], [t for g in gold for t in g])}

  def submission_text(self, predictions: Sequence[Sequence[str]], examples) -> tuple[str, str]:
    """XTREME's tagging submission: one tag per line, a blank line after each sentence."""
    return "tsv", "".join("".join(f"{t}\n" for t in tags) + "\n" for tags in predictions)


def first_subword_positions(word_ids: Sequence[int | None], num_words: int) -> np.ndarray:
  """Position of each word's first sub-word in a tokenised sequence; -1 for a word not present."""
  first = np.full(num_words, -1, np.int64)
  previous = None
  for pos, w in enumerate(word_ids):
    if w is not None and w != previous and first[w] < 0:
      first[w] = pos
    previous = w
  return first


def _has_empty_words(encoding, num_words: int, truncated: bool) -> bool:
  present = {w for w in encoding.word_ids if w is not None}
  if not present:
    return num_words > 0 and not truncated
  last = num_words - 1 if not truncated else max(present)
  return len(present) < last + 1


def _unk_empty_words(tokenizer, words: list[str]) -> list[str]:
  enc = tokenizer(words, is_split_into_words=True, add_special_tokens=False)
  present = {w for w in enc.word_ids() if w is not None}
  return [w if i in present else tokenizer.unk_token for i, w in enumerate(words)]


# ---- registrations: each task with its card ------------------------------------------------------

# google-research/xtreme evaluate.py TASK2LANGS; XTREME-R's extensions from scripts/download_data.sh.
UDPOS_LANGS = langs("af,ar,bg,de,el,en,es,et,eu,fa,fi,fr,he,hi,hu,id,it,ja,kk,ko,mr,nl,pt,ru,ta,"
                    "te,th,tl,tr,ur,vi,yo,zh")
UDPOS_R_LANGS = UDPOS_LANGS + langs("lt,pl,uk,wo,ro")  # UD v2.7 (XTREME: v2.5)
PANX_LANGS = langs("ar,he,vi,id,jv,ms,tl,eu,ml,ta,te,af,nl,en,de,el,bn,hi,mr,ur,fa,fr,it,pt,es,"
                   "bg,ru,ja,ka,ko,th,sw,yo,my,zh,kk,tr,et,fi,hu")
PANX_R_LANGS = PANX_LANGS + langs("qu,pl,uk,az,lt,pa,gu,ro")
# google/xtreme names UD treebank configs by the language's English name (udpos.German).
UDPOS_NAMES = {
    "af": "Afrikaans", "ar": "Arabic", "bg": "Bulgarian", "de": "German", "el": "Greek", "en": "English",
    "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian", "fi": "Finnish", "fr": "French",
    "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian", "id": "Indonesian", "it": "Italian", "ja": "Japanese",
    "kk": "Kazakh", "ko": "Korean", "mr": "Marathi", "nl": "Dutch", "pt": "Portuguese", "ru": "Russian",
    "ta": "Tamil", "te": "Telugu", "th": "Thai", "tl": "Tagalog", "tr": "Turkish", "ur": "Urdu",
    "vi": "Vietnamese", "yo": "Yoruba", "zh": "Chinese"}
# UD 2.5 treebanks in google/xtreme without training data (test only), and without a dev split.
_UDPOS_NO_TRAIN = ("th", "tl", "yo")
_UDPOS_NO_DEV = _UDPOS_NO_TRAIN + ("kk",)
UDPOS_SOURCE = SourceRow(
    "udpos", UDPOS_LANGS, "google/xtreme", "udpos.{lang}",
    splits={"train": tuple(c for c in UDPOS_LANGS if c not in _UDPOS_NO_TRAIN),
            "validation": tuple(c for c in UDPOS_LANGS if c not in _UDPOS_NO_DEV), "test": ALL},
    split_names=DEV, language_names=UDPOS_NAMES,
    url="https://lindat.mff.cuni.cz/repository/xmlui/handle/11234/1-3105 (UD 2.5)",
    license="per treebank (UD 2.5; UD 2.7 for XTREME-R's extra languages)",
    verified=f"{XTREME_SHA}: udpos.German train 166849 / validation 19233 / test 22458, "
             "udpos.Tagalog test only, udpos.Kazakh train 31 / test 1047",
    # XTREME-R's extra languages (lt pl uk wo ro) are UD 2.7 treebanks, not in google/xtreme.
    fallback_url="https://lindat.mff.cuni.cz/repository/xmlui/bitstream/handle/11234/1-3424/"
                 "ud-treebanks-v2.7.tgz",
    target="udpos/{lang}/{split}.conllu", writer="conllu")
PANX_SOURCE = SourceRow(
    "panx", PANX_R_LANGS, "unimelb-nlp/wikiann", "{lang}", splits=TVT, split_names=DEV,
    tfds_name="wikiann/{lang}", tfds_split_names=DEV,
    url="https://www.amazon.com/clouddrive/share/d3KGCRCIYwhKJF0H3eWA26hjg2ZCRhjpEQtDL70FSBN "
        "(AmazonPhotos.zip)",
    license="ODC-BY",
    verified="hub commits 'Add <lang> data files' (parquet; ms train 20000 / 1000 / 1000)",
    target="panx/{split}-{lang}.tsv", writer="panx")
CCG_SOURCE = SourceRow(
    "ccg", EN, None, url="https://catalog.ldc.upenn.edu/LDC2005T13", license="LDC user agreement",
    manual="CCGbank 1.1 is licensed by the LDC (LDC2005T13): obtain it there, then run "
           "`xtjax data check-ccg DIR --out OUT` on it (writes OUT/ccg/{train,dev,test}.auto)")

F1 = ("f1",)  # evaluate.py: seqeval span F1 for PAN-X and UD-POS alike

register(TaggingTask("udpos", UPOS_LABELS, read_udpos_file, udpos_row, "seqeval", UDPOS_SOURCE.hub_defaults()),
         TaskCard("udpos", UDPOS_SOURCE, benchmarks={
             "xtreme": BenchmarkEntry(UDPOS_LANGS, ("udpos",), "tagging"),
             "xtreme-r": BenchmarkEntry(UDPOS_R_LANGS, ("udpos",), "structured_prediction")},
             score_metrics=F1, text_to_text=forms.tag_sequence("pos"),
             submission=Submission(TAGS, ("{lang}/test.conllu", "udpos/{lang}/test.conllu"),
                                   glob="UD_*/{lang}_*-ud-test.conllu")))
register(TaggingTask("panx", PANX_LABELS, read_panx_file, panx_row, "seqeval", PANX_SOURCE.hub_defaults()),
         TaskCard("panx", PANX_SOURCE, benchmarks={
             "xtreme": BenchmarkEntry(PANX_LANGS, ("panx",), "tagging"),
             "xtreme-r": BenchmarkEntry(PANX_R_LANGS, ("panx",), "structured_prediction")},
             score_metrics=F1, text_to_text=forms.NER,
             # an upstream test-{lang}.tsv holds `lang:token<TAB>tag`; one without tabs is a submission file
             submission=Submission(TAGS, ("test-{lang}.tsv", "panx/test-{lang}.tsv"), tabbed=True)))
register(TaggingTask("ccg", None, read_ccg_file, ccg_row, "accuracy"),
         TaskCard("ccg", CCG_SOURCE, intermediate=True, text_to_text=forms.tag_sequence("ccg")))
