"""Atomic file writes: nothing is ever left half-written (write to a temp path, then rename).

The temp files and folders get the modes a plain `open` / `mkdir` would give (0666 / 0777 less the
umask), not mkstemp's 0600 / 0700, so colleagues on a shared disk can read the run.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import tempfile
from collections.abc import Collection
from pathlib import Path


@functools.cache
def umask() -> int:
  """The process umask (read once: setting it to read it is not thread-safe later)."""
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


@contextlib.contextmanager
def naming_errors(path: str | os.PathLike, errnos: Collection[int] | None = None):
  """An OSError inside the block (of one of `errnos`, default any) names `path`: a write to an open
  file names nothing, and a temp file next to `path` has a random name."""
  try:
    yield
  except OSError as e:
    if errnos is not None and e.errno not in errnos:
      raise
    raise OSError(e.errno, e.strerror, str(path)) from e


# What only a write can meet; a caller's block may also read, and a read error must keep its own name.
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ""):
  """Yields a temp file path next to `path`; renames it onto `path` only if the block succeeds."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  with naming_errors(path):
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
  os.fchmod(fd, 0o666 & ~umask())
  os.close(fd)
  try:
    with naming_errors(path, WRITE_ERRNOS):
      yield Path(tmp)
      os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.unlink(tmp)
    raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike):
  """Yields a temp directory next to `path`; moves it onto `path` only if the block succeeds."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  with naming_errors(path):
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
  tmp.chmod(0o777 & ~umask())
  try:
    with naming_errors(path, WRITE_ERRNOS):
      yield tmp
    if path.exists():
      old = path.with_name(f".{path.name}.old")
      shutil.rmtree(old, ignore_errors=True)
      os.replace(path, old)
      os.replace(tmp, path)
      shutil.rmtree(old, ignore_errors=True)
    else:
      os.replace(tmp, path)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
  with atomic_path(path) as tmp:
    tmp.write_text(text)
