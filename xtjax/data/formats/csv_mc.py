"""Cosmos QA: the CSV release (`id,context,question,answer0..answer3,label`) and its test jsonl.

Fields are quoted where needed (most contexts contain commas), so a real CSV parser reads them;
the text is pre-tokenised upstream (`wo nt`) and is kept as is.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from xtjax.data.formats.common import PathLike, fail, get, iter_jsonl, read_text
from xtjax.data.formats.records import MultipleChoiceExample, ReadResult

COSMOS_COLUMNS = ("id", "context", "question", "answer0", "answer1", "answer2", "answer3")
_LABELS = ("0", "1", "2", "3")


def read_cosmosqa(path: PathLike) -> ReadResult:
  """Reads Cosmos QA `{train,valid}.csv` (label 0-3) or `test.jsonl` (no label)."""
  if Path(path).suffix == ".jsonl":
    return _read_jsonl(path)
  reader = csv.reader(io.StringIO(read_text(path), newline=""))
  header = next(reader, None)
  if header is None or tuple(header[:7]) != COSMOS_COLUMNS:
    raise fail(path, 1, None, f"expected header {','.join(COSMOS_COLUMNS)}[,label], got {header}")
  has_label = header[7:] == ["label"]
  if len(header) != 7 + has_label:
    raise fail(path, 1, None, f"unexpected columns {header[7:]}")
  examples = []
  for row in reader:
    number = reader.line_num
    if not row:
      continue
    if len(row) != len(header):
      raise fail(path, number, None, f"expected {len(header)} columns, found {len(row)}")
    label = None
    if has_label:
      if row[7] not in _LABELS:
        raise fail(path, number, "label", f"{row[7]!r} is not one of 0-3")
      label = int(row[7])
    examples.append(MultipleChoiceExample(row[0], row[1], row[2], tuple(row[3:7]), label))
  return ReadResult(str(path), examples, {}, {"examples": len(examples)})


def _read_jsonl(path: PathLike) -> ReadResult:
  examples = []
  for number, obj in iter_jsonl(path):
    values = [get(obj, key, str, path, number) for key in COSMOS_COLUMNS]
    label = get(obj, "label", (int, str), path, number, optional=True)
    if label is not None:
      if str(label) not in _LABELS:
        raise fail(path, number, "label", f"{label!r} is not one of 0-3")
      label = int(label)
    guid, context, question, *choices = values
    examples.append(MultipleChoiceExample(guid, context, question, tuple(choices), label))
  return ReadResult(str(path), examples, {}, {"examples": len(examples)})
