"""Fixtures for the format-reader tests: writing upstream-format files, checking DataErrors, and
locating the shared real data (tests that need it skip when it is absent)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from fixtures import write as write_file

from xtjax.errors import DataError

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture
def write(tmp_path):
  """write(name, text | json-able object | list of objects as jsonl) -> Path."""
  def _write(name: str, content) -> Path:
    return write_file(tmp_path, name, content)
  return _write


@pytest.fixture
def expect_error():
  """with expect_error(path, 'path:3', '[field]'): ... asserts a DataError naming them all."""
  @contextlib.contextmanager
  def _expect(path, *parts):
    with pytest.raises(DataError) as info:
      yield info
    message = str(info.value)
    assert str(path) in message, message
    for part in parts:
      assert part in message, message
  return _expect


@pytest.fixture
def shared_data():
  """shared_data('xquad') -> Path under /work/shared/data, or skips the test."""
  def _get(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
      pytest.skip(f"{path} is not available")
    return path
  return _get
