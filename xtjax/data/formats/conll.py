"""Token-per-line tagging formats: CoNLL-U (UD-POS), PAN-X/WikiANN (NER) and CCG supertags.

Supported:
- CoNLL-U: 10 tab-separated columns; FORM (col 2) and UPOS (col 4) are read. Comment lines,
  multiword-token lines (`1-2`) and empty nodes (`1.1`) are skipped and counted. With
  multiword="fused", each multiword span is instead one token, its surface form, tagged with the
  UPOS of the span's syntactic head, as XTREME's conversion (`--replace_subtokens_with_fused_forms`)
  does; ties between equally high words go to the first (XTREME breaks them by a POS list).
- PAN-X: XTREME's raw files (`lang:token<TAB>label`) and its processed ones (`token<TAB>label`,
  or `token` alone in label-stripped test files); sentences end at blank lines.
- CCG supertags: the common `token<TAB>supertag` per line, blank-line separated; and CCGbank's
  AUTO files (`ID=...` header line, then one derivation line whose leaves are
  `(<L category pos pos word pred-arg-category>)`). Not supported: CCGbank PARG/HTML and the
  `word|pos|tag` pipe format.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

from xtjax.data.formats.common import PathLike, fail, iter_lines, split_tsv
from xtjax.data.formats.records import ReadResult, TaggingExample

UPOS_TAGS = frozenset(
    "ADJ ADP ADV AUX CCONJ DET INTJ NOUN NUM PART PRON PROPN PUNCT SCONJ SYM VERB X".split())
MULTIWORD_MODES = ("skip", "fused")
IOB2_TAG = re.compile(r"O|[BI]-\S+")
_LANG_PREFIX = re.compile(r"[a-z]{2,3}(?:-[a-z]+)*:")
_AUTO_LEAF = re.compile(r"<L (\S+) (\S+) (\S+) (\S+) (\S+)>")


def read_conllu(path: PathLike, *, multiword: str = "skip") -> ReadResult:
  """Reads a CoNLL-U file into TaggingExamples of (FORM, UPOS); guid is `# sent_id` if given."""
  if multiword not in MULTIWORD_MODES:
    raise ValueError(f"multiword must be one of {MULTIWORD_MODES}, got {multiword!r}")
  examples: list[TaggingExample] = []
  skipped = {"multiword_token_lines": 0, "multiword_parts": 0, "empty_nodes": 0}
  counts = {"sentences": 0, "tokens": 0}
  block: list[tuple[int, str]] = []
  for number, line in itertools.chain(iter_lines(path), [(None, "")]):
    if line.strip():
      block.append((number, line))
      continue
    if block:
      example = _conllu_sentence(path, block, len(examples), multiword, skipped)
      examples.append(example)
      counts["sentences"] += 1
      counts["tokens"] += len(example.tokens)
      block = []
  return ReadResult(str(path), examples, skipped, counts)


def _conllu_sentence(path, block, index, multiword, skipped) -> TaggingExample:
  sent_id = None
  words: list[tuple[str, str, str]] = []  # (form, upos, head)
  spans: list[tuple[int, int, str, int]] = []  # multiword tokens: (first, last, form, line)
  for number, line in block:
    if line.startswith("#"):
      key, _, value = line[1:].partition("=")
      if key.strip() == "sent_id":
        sent_id = value.strip()
      continue
    cells = split_tsv(path, number, line, 10)
    word_id, form, upos, head = cells[0], cells[1], cells[3], cells[6]
    if "." in word_id:
      skipped["empty_nodes"] += 1
      continue
    if "-" in word_id:
      first, last = _id_range(path, number, word_id)
      if first != len(words) + 1 or (spans and spans[-1][1] >= first):
        raise fail(path, number, "ID", f"multiword token {word_id} must come right before "
                                       f"word {first} and not overlap another")
      spans.append((first, last, form, number))
      continue
    if word_id != str(len(words) + 1):
      raise fail(path, number, "ID", f"expected word id {len(words) + 1}, found {word_id!r}")
    if upos not in UPOS_TAGS:
      raise fail(path, number, "UPOS", f"{upos!r} is not a Universal POS tag")
    words.append((form, upos, head))
  first_line = block[0][0]
  if not words:
    raise fail(path, first_line, None, "sentence block has no words")
  for first, last, _, number in spans:
    if last > len(words):
      raise fail(path, number, "ID", f"multiword token {first}-{last} runs past the sentence")
  guid = sent_id or f"{Path(path).stem}-{index}"
  if multiword == "fused" and spans:
    return _fuse(path, first_line, guid, words, spans, skipped)
  if multiword == "skip":
    skipped["multiword_token_lines"] += len(spans)
  return TaggingExample(guid, tuple(w[0] for w in words), tuple(w[1] for w in words))


def _id_range(path, number, word_id) -> tuple[int, int]:
  first, _, last = word_id.partition("-")
  if not (first.isdigit() and last.isdigit() and int(first) < int(last)):
    raise fail(path, number, "ID", f"bad multiword range {word_id!r}")
  return int(first), int(last)


def _fuse(path, line, guid, words, spans, skipped) -> TaggingExample:
  """Replaces each multiword span by its surface form, tagged with the span head's UPOS."""
  heads = []
  for i, (_, _, head) in enumerate(words, start=1):
    if not head.isdigit() or int(head) > len(words):
      raise fail(path, line, "HEAD", f"word {i} has head {head!r}; fused forms need a tree")
    heads.append(int(head))

  def depth(i: int) -> int:
    steps = 0
    while i != 0 and steps <= len(words):
      i, steps = heads[i - 1], steps + 1
    return steps

  tokens, labels, starts = [], [], {first: (last, form) for first, last, form, _ in spans}
  i = 1
  while i <= len(words):
    if i in starts:
      last, form = starts[i]
      head = min(range(i, last + 1), key=depth)
      tokens.append(form)
      labels.append(words[head - 1][1])
      skipped["multiword_parts"] += last - i + 1
      i = last + 1
    else:
      tokens.append(words[i - 1][0])
      labels.append(words[i - 1][1])
      i += 1
  return TaggingExample(guid, tuple(tokens), tuple(labels))


def read_panx(path: PathLike, *, lang_prefix: bool | None = None) -> ReadResult:
  """Reads PAN-X/WikiANN NER in XTREME's raw (`lang:token<TAB>tag`) or processed layout.

  lang_prefix=None detects the `lang:` prefix from the first token line; when present, every
  line must carry the same one. Tags must be IOB2 (`O`, `B-X`, `I-X`).
  """
  return _read_token_tag(path, lang_prefix=lang_prefix, tag_pattern=IOB2_TAG, tag_name="NER tag")


def read_supertags(path: PathLike) -> ReadResult:
  """Reads CCG supertags as `token<TAB>supertag` lines, sentences separated by blank lines."""
  return _read_token_tag(path, lang_prefix=False, tag_pattern=re.compile(r"\S+"),
                         tag_name="supertag")


def _read_token_tag(path, *, lang_prefix, tag_pattern, tag_name) -> ReadResult:
  examples: list[TaggingExample] = []
  counts = {"sentences": 0, "tokens": 0}
  tokens: list[str] = []
  labels: list[str] = []
  columns = prefix = None
  for number, line in itertools.chain(iter_lines(path), [(None, "")]):
    if not line.strip():
      if tokens:
        guid = f"{Path(path).stem}-{len(examples)}"
        tags = tuple(labels) if columns == 2 else None
        examples.append(TaggingExample(guid, tuple(tokens), tags))
        counts["sentences"] += 1
        counts["tokens"] += len(tokens)
        tokens, labels = [], []
      continue
    cells = split_tsv(path, number, line, (1, 2))
    if columns is None:
      columns = len(cells)
      if lang_prefix is None:
        match = _LANG_PREFIX.match(cells[0])
        lang_prefix = bool(match) and len(cells[0]) > match.end()
    elif len(cells) != columns:
      raise fail(path, number, None, f"{len(cells)} columns here but {columns} on earlier lines")
    token = cells[0]
    if lang_prefix:
      match = _LANG_PREFIX.match(token)
      if not match or (prefix is not None and match.group() != prefix):
        want = prefix or "a 'lang:' prefix"
        raise fail(path, number, "token", f"expected {want} on {token!r}")
      prefix, token = match.group(), token[match.end():]
    if not token.strip():
      raise fail(path, number, "token", "empty token")
    if columns == 2:
      if not tag_pattern.fullmatch(cells[1]):
        raise fail(path, number, tag_name, f"{cells[1]!r} is not a valid {tag_name}")
      labels.append(cells[1])
    tokens.append(token)
  return ReadResult(str(path), examples, {}, counts)


def read_ccgbank_auto(path: PathLike) -> ReadResult:
  """Reads CCGbank AUTO derivations into (word, lexical category) TaggingExamples."""
  examples: list[TaggingExample] = []
  counts = {"sentences": 0, "tokens": 0}
  header: tuple[int, str] | None = None
  for number, line in iter_lines(path):
    if not line.strip():
      continue
    if line.startswith("ID="):
      if header is not None:
        raise fail(path, header[0], None, "header without a derivation line")
      header = (number, line.split()[0][3:])
      continue
    if header is None:
      raise fail(path, number, None, "derivation line without an 'ID=' header")
    leaves = _AUTO_LEAF.findall(line)
    if not leaves or len(leaves) != line.count("<L "):
      raise fail(path, number, "leaf", "malformed leaf; expected '<L cat pos pos word cat>'")
    examples.append(TaggingExample(header[1], tuple(leaf[3] for leaf in leaves),
                                   tuple(leaf[0] for leaf in leaves)))
    counts["sentences"] += 1
    counts["tokens"] += len(leaves)
    header = None
  if header is not None:
    raise fail(path, header[0], None, "header without a derivation line")
  return ReadResult(str(path), examples, {}, counts)
