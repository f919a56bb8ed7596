"""Shared helpers for the format readers: decoding, line and JSON iteration, checked field access.

Every problem becomes a `DataError` whose message starts with `where(path, line, field)`.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from xtjax.errors import DataError, where

PathLike = str | os.PathLike


def fail(path: PathLike, line: int | None, field: str | None, message: str) -> DataError:
  """Builds the error every reader raises: 'path:line [field]: message'."""
  return DataError(f"{where(path, line, field)}: {message}")


def _open_binary(path: PathLike):
  path = Path(path)
  if not path.is_file():
    raise DataError(f"{path}: no such file")
  return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _decode(path: PathLike, data: bytes, line: int) -> str:
  try:
    return data.decode("utf-8")
  except UnicodeDecodeError as e:
    line += data[: e.start].count(b"\n")
    raise fail(path, line, None, f"not valid UTF-8 ({e.reason})") from None


def read_text(path: PathLike) -> str:
  """Reads a UTF-8 file (gzip if it ends in .gz); a leading BOM is dropped."""
  with _open_binary(path) as f:
    text = _decode(path, f.read(), 1)
  return text[1:] if text.startswith("\ufeff") else text


def iter_lines(path: PathLike) -> Iterator[tuple[int, str]]:
  """Streams (1-based line number, line without its '\\n' or '\\r\\n').

  Lines end only at '\\n': a stray '\\r' inside a sentence does not split it.
  """
  with _open_binary(path) as f:
    for number, raw in enumerate(f, start=1):
      line = _decode(path, raw, number)
      if number == 1 and line.startswith("\ufeff"):
        line = line[1:]
      if line.endswith("\n"):
        line = line[:-1]
      yield number, line[:-1] if line.endswith("\r") else line


def load_json(path: PathLike) -> Any:
  """Parses a whole-file JSON document."""
  try:
    return json.loads(read_text(path))
  except json.JSONDecodeError as e:
    raise fail(path, e.lineno, None, f"invalid JSON: {e.msg}") from None


def iter_jsonl(path: PathLike) -> Iterator[tuple[int, dict]]:
  """Yields (line number, object) for each non-blank line of a JSON-lines file."""
  for number, line in iter_lines(path):
    if not line.strip():
      continue
    try:
      obj = json.loads(line)
    except json.JSONDecodeError as e:
      raise fail(path, number, None, f"invalid JSON: {e.msg}") from None
    if not isinstance(obj, dict):
      raise fail(path, number, None, f"expected a JSON object, got {type(obj).__name__}")
    yield number, obj


_TYPE_NAMES = {str: "a string", int: "an integer", bool: "a boolean", list: "a list",
               dict: "an object"}


def get(obj: dict, key: str, kind: type | tuple[type, ...], path: PathLike, line: int | None,
        field: str | None = None, optional: bool = False) -> Any:
  """Returns obj[key] checked to be of `kind`; missing or mistyped values raise DataError.

  `field` names the location in the error (defaults to `key`); with `optional`, a missing key or
  a JSON null gives None.
  """
  field = field or key
  if not isinstance(obj, dict):
    raise fail(path, line, field, "expected a JSON object")
  if key not in obj or obj[key] is None:
    if optional:
      return None
    raise fail(path, line, field, "missing")
  value = obj[key]
  kinds = kind if isinstance(kind, tuple) else (kind,)
  # bool is an int in Python; an integer field must not accept true/false.
  if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
    names = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
    raise fail(path, line, field, f"expected {names}, got {json.dumps(value)[:60]}")
  return value


def split_tsv(path: PathLike, number: int, line: str, expected: int | tuple[int, ...]) -> list[str]:
  """Splits a tab-separated line, requiring one of the expected column counts."""
  cells = line.split("\t")
  allowed = expected if isinstance(expected, tuple) else (expected,)
  if len(cells) not in allowed:
    want = " or ".join(str(n) for n in allowed)
    raise fail(path, number, None, f"expected {want} tab-separated columns, found {len(cells)}")
  return cells
