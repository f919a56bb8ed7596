"""Tab-separated formats: XNLI, MNLI, PAWS-X, QQP, XTREME's processed pair files and BUCC 2018.

Header-based files are read by column name; every row must have as many cells as the header.
Cells are split on tabs only (no quoting: GLUE and XNLI files contain bare `"` characters).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from xtjax.data.formats.common import PathLike, fail, iter_lines, split_tsv
from xtjax.data.formats.records import (ClassificationExample, ReadResult, RetrievalCandidate,
                                        RetrievalQuery)

NLI_LABELS = ("entailment", "neutral", "contradiction")
BINARY_LABELS = ("0", "1")
# XNLI-MT's multinli.train.en.tsv says "contradictory"; XTREME's preprocessing renames it.
_NLI_ALIASES = {"contradictory": "contradiction"}


def _rows(path: PathLike, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
  """Yields (line number, {column: cell}) for a TSV file whose first line is a header."""
  lines = iter_lines(path)
  first = next(lines, None)
  if first is None:
    raise fail(path, None, None, "empty file (expected a header line)")
  header = first[1].split("\t")
  missing = [name for name in required if name not in header]
  if missing:
    raise fail(path, 1, None, f"header lacks column(s) {missing}; found {header}")
  for number, line in lines:
    if not line.strip():
      continue
    yield number, dict(zip(header, split_tsv(path, number, line, len(header))))


def _header(path: PathLike) -> list[str]:
  for _, line in iter_lines(path):
    return line.split("\t")
  raise fail(path, None, None, "empty file (expected a header line)")


def _label(path, number, field, value, allowed, aliases=None) -> str:
  value = (aliases or {}).get(value, value)
  if value not in allowed:
    raise fail(path, number, field, f"label {value!r} is not one of {list(allowed)}")
  return value


def read_xnli(path: PathLike, *, language: str | None = None) -> ReadResult:
  """Reads XNLI-1.0's xnli.dev.tsv / xnli.test.tsv (all 15 languages in one file).

  guid is '{language}-{pairID}'. With `language`, rows in other languages are left out and
  counted as skipped 'other_language'.
  """
  examples, skipped = [], {"other_language": 0}
  for number, row in _rows(path, ("language", "gold_label", "sentence1", "sentence2", "pairID")):
    if language is not None and row["language"] != language:
      skipped["other_language"] += 1
      continue
    label = _label(path, number, "gold_label", row["gold_label"], NLI_LABELS, _NLI_ALIASES)
    examples.append(ClassificationExample(f"{row['language']}-{row['pairID']}", row["sentence1"],
                                          row["sentence2"], label))
  return ReadResult(str(path), examples, skipped, {"examples": len(examples)})


def read_mnli(path: PathLike) -> ReadResult:
  """Reads MultiNLI as GLUE/MultiNLI TSV (sentence1, sentence2, gold_label) or XNLI-MT TSV.

  XNLI-MT's multinli.train.en.tsv has columns premise, hypo, label, as XTREME's XNLI training
  uses. Rows with gold_label '-' (no annotator majority) are skipped and counted as
  'no_gold_label'. GLUE test files, which have no label column, give label=None.
  """
  header = _header(path)
  if "premise" in header:
    columns = ("premise", "hypo", "label")
  else:
    columns = ("sentence1", "sentence2", "gold_label" if "gold_label" in header else None)
  examples, skipped = [], {"no_gold_label": 0}
  required = [c for c in columns if c is not None]
  for number, row in _rows(path, required):
    label = row[columns[2]] if columns[2] else None
    if label == "-":
      skipped["no_gold_label"] += 1
      continue
    if label is not None:
      label = _label(path, number, columns[2], label, NLI_LABELS, _NLI_ALIASES)
    guid = row.get("pairID") or f"{Path(path).stem}-{number}"
    examples.append(ClassificationExample(guid, row[columns[0]], row[columns[1]], label))
  return ReadResult(str(path), examples, skipped, {"examples": len(examples)})


def read_pawsx(path: PathLike) -> ReadResult:
  """Reads a PAWS-X TSV (`id sentence1 sentence2 label`, with header); labels are '0'/'1'."""
  examples = []
  for number, row in _rows(path, ("id", "sentence1", "sentence2", "label")):
    label = _label(path, number, "label", row["label"], BINARY_LABELS)
    examples.append(ClassificationExample(row["id"], row["sentence1"], row["sentence2"], label))
  return ReadResult(str(path), examples, {}, {"examples": len(examples)})


def read_qqp(path: PathLike) -> ReadResult:
  """Reads GLUE QQP (`id qid1 qid2 question1 question2 is_duplicate`; test files lack labels)."""
  has_label = "is_duplicate" in _header(path)
  examples = []
  for number, row in _rows(path, ("id", "question1", "question2")):
    label = _label(path, number, "is_duplicate", row["is_duplicate"], BINARY_LABELS) \
        if has_label else None
    examples.append(ClassificationExample(row["id"], row["question1"], row["question2"], label))
  return ReadResult(str(path), examples, {}, {"examples": len(examples)})


def read_xtreme_pairs(path: PathLike, *, labels: Sequence[str]) -> ReadResult:
  """Reads XTREME's processed pair files (xnli/pawsx `{split}-{lang}.tsv`): no header,
  `text_a<TAB>text_b<TAB>label`, or two columns in label-stripped test files."""
  examples, columns = [], None
  for number, line in iter_lines(path):
    cells = split_tsv(path, number, line, (2, 3))
    if columns is None:
      columns = len(cells)
    elif len(cells) != columns:
      raise fail(path, number, None, f"{len(cells)} columns here but {columns} on earlier lines")
    label = _label(path, number, "label", cells[2], labels) if columns == 3 else None
    examples.append(ClassificationExample(f"{Path(path).stem}-{number}", cells[0], cells[1], label))
  return ReadResult(str(path), examples, {}, {"examples": len(examples)})


def read_bucc(data_dir: PathLike, source_lang: str, split: str, *,
              target_lang: str = "en") -> ReadResult:
  """Reads one BUCC 2018 language pair: `{src}-{trg}.{split}.{src|trg}` and `.gold`.

  Sentence files hold `id<TAB>sentence` lines with ids like 'de-000000001'. Examples are the
  source sentences as RetrievalQuery (relevant = gold target ids, usually empty); candidates are
  the target sentences. Without a .gold file (XTREME deletes the test one) nothing is relevant.
  """
  prefix = Path(data_dir) / f"{source_lang}-{target_lang}.{split}"
  source = _read_id_sentences(Path(f"{prefix}.{source_lang}"), source_lang)
  target = _read_id_sentences(Path(f"{prefix}.{target_lang}"), target_lang)
  gold: dict[str, list[str]] = {}
  gold_path = Path(f"{prefix}.gold")
  pairs = 0
  if gold_path.exists():
    for number, line in iter_lines(gold_path):
      src_id, trg_id = split_tsv(gold_path, number, line, 2)
      if src_id not in source:
        raise fail(gold_path, number, "source id", f"{src_id!r} is not in {prefix}.{source_lang}")
      if trg_id not in target:
        raise fail(gold_path, number, "target id", f"{trg_id!r} is not in {prefix}.{target_lang}")
      gold.setdefault(src_id, []).append(trg_id)
      pairs += 1
  queries = [RetrievalQuery(i, source_lang, text, tuple(gold.get(i, ())))
             for i, text in source.items()]
  candidates = [RetrievalCandidate(i, target_lang, text) for i, text in target.items()]
  counts = {"source_sentences": len(source), "target_sentences": len(target), "gold_pairs": pairs}
  return ReadResult(str(prefix), queries, {}, counts, candidates)


def _read_id_sentences(path: Path, lang: str) -> dict[str, str]:
  sentences: dict[str, str] = {}
  for number, line in iter_lines(path):
    sentence_id, text = split_tsv(path, number, line, 2)
    if not sentence_id.startswith(f"{lang}-"):
      raise fail(path, number, "id", f"{sentence_id!r} does not start with '{lang}-'")
    if sentence_id in sentences:
      raise fail(path, number, "id", f"duplicate id {sentence_id!r}")
    sentences[sentence_id] = text
  return sentences
