"""User-facing errors: one clear line saying what is wrong and where (file, line, key)."""

from __future__ import annotations


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
