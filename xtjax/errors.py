"""User-facing errors: one clear line saying what is wrong and where (file, line, key)."""

from __future__ import annotations

import errno
import os
import re


class XtjaxError(Exception):
  """An error the user can act on; the CLI prints it as one line and exits non-zero."""

  exit_code = 2


class ConfigError(XtjaxError):
  """A bad config file, key or value."""


class CheckpointError(XtjaxError):
  """A checkpoint that cannot be read, or whose tensors do not fit the model."""


class DataError(XtjaxError):
  """Malformed input data (names the file and line or record)."""


def where(path, line: int | None = None, field: str | None = None) -> str:
  """Formats a location as 'path:line [field]' for error messages."""
  s = str(path)
  if line is not None:
    s += f":{line}"
  if field is not None:
    s += f" [{field}]"
  return s


# A full, read-only or unwritable output disk: what the user must fix is the disk, not xtjax.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})
# Orbax / TensorStore wrap the OS error in a status message naming the file and the errno.
_STATUS = re.compile(r'"(?P<path>/[^"]+)".*\[os_error_code=\'(?P<errno>\d+)\'\]')


def storage_problem(error: BaseException | str) -> str | None:
  """'PATH: reason' when `error` (or what it wraps) is a full, read-only or unwritable disk, else None.
  A path inside an unfinished Orbax checkpoint is named by the checkpoint it belongs to."""
  chain: list = []
  while error is not None and all(error is not e for e in chain):
    chain.append(error)
    error = (error.__cause__ or error.__context__) if isinstance(error, BaseException) else None
  for e in chain:
    if isinstance(e, OSError) and e.errno in STORAGE_ERRNOS:
      return f"{e.filename or '(unnamed file)'}: {e.strerror}"
    m = _STATUS.search(str(e))
    if m is not None and int(m["errno"]) in STORAGE_ERRNOS:
      return f"{m['path'].split('.orbax-checkpoint-tmp')[0]}: {os.strerror(int(m['errno']))}"
  return None
