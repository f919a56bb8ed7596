"""Run-directory paths and atomic file writes: nothing is ever left half-written.

A run directory may be local or a URL (`gs://bucket/run`, any scheme etils.epath knows): `run_path` /
`as_path` give an `etils.epath.Path` for either, and nothing else in xtjax builds paths for one.
Locally a write goes to a temp path that is renamed into place. An object store has no atomic rename,
so there a file is staged locally and written once as a whole object, and a folder's files are written
one by one with the file its readers check (`last`) written after all the others.

Local temp files and folders get the modes a plain `open` / `mkdir` would give (0666 / 0777 less the
umask), not mkstemp's 0600 / 0700, so colleagues on a shared disk can read the run.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Collection, Iterator
from pathlib import Path

from etils import epath

from xtjax.errors import ConfigError


def is_remote(path: str | os.PathLike) -> bool:
  """A URL (`gs://...`): a store reached through etils.epath, with no atomic rename and no appends."""
  return "://" in os.fspath(path)


@functools.cache
def missing_gcs_clients() -> tuple[str, ...]:
  """Packages a gs:// run directory needs that are not installed: etils.epath reads gs:// through
  TensorFlow's gfile when TF is installed, else through fsspec's gcsfs; Orbax asks google-cloud-storage
  whether a bucket has a hierarchical namespace before listing checkpoints."""
  import importlib.util

  missing = [] if importlib.util.find_spec("tensorflow") or importlib.util.find_spec("gcsfs") else ["gcsfs"]
  try:
    storage = importlib.util.find_spec("google.cloud.storage")
  except ModuleNotFoundError:
    storage = None
  return tuple(missing + ([] if storage else ["google-cloud-storage"]))


def as_path(path: str | os.PathLike) -> epath.Path:
  """`path` as an etils Path, as given (a relative local path stays relative)."""
  if os.fspath(path).startswith("gs://") and missing_gcs_clients():
    need = missing_gcs_clients()
    raise ConfigError(f"{os.fspath(path)}: a gs:// run directory needs {' and '.join(need)} "
                     f"(pip install {' '.join(need)})")
  try:
    return epath.Path(os.fspath(path))
  except KeyError:  # epath's registry of URL schemes
    raise ConfigError(f"{os.fspath(path)}: unsupported URL scheme (etils.epath reads gs://, s3://, az://, hf:// "
                     f"and local paths)") from None


def run_path(path: str | os.PathLike) -> epath.Path:
  """A run directory (or a file in one): a gs:// URL as given, a local path made absolute (as it is printed).

  Other URLs are refused: Orbax (0.12) writes checkpoints to local paths and gs:// only. A bucket that
  cannot be reached fails here, in seconds (`require_reachable`)."""
  if not is_remote(path):
    return as_path(Path(path).absolute())
  if not os.fspath(path).startswith("gs://"):
    raise ConfigError(f"{os.fspath(path)}: a run directory is a local path or a gs:// URL (Orbax writes "
                      f"checkpoints to no other store)")
  out = as_path(path)
  require_reachable(path)
  return out


# ---- gs://: one client, and a bucket probed once before anything else touches it -----------------------

REACH_TIMEOUT_S = 8.0  # the whole probe: credentials, token refresh, one bucket request (no retries)


@functools.cache
def gcs_client():
  """The google-cloud-storage client (Application Default Credentials) that probes buckets and holds leases."""
  from google.cloud import storage

  return storage.Client()


def _first_line(e: BaseException) -> str:
  while e.__cause__ is not None or e.__context__ is not None:  # the innermost error says what happened
    e = e.__cause__ or e.__context__
  text = str(e).strip().splitlines()[0] if str(e).strip() else ""
  return f"{type(e).__name__}: {text[:160]}"


def _probe(bucket: str) -> str | None:
  import google.auth.exceptions
  from google.api_core import exceptions as api

  try:
    client = gcs_client()
  except google.auth.exceptions.DefaultCredentialsError:
    return ("no Google Cloud credentials (run `gcloud auth application-default login`, or set "
            "GOOGLE_APPLICATION_CREDENTIALS)")
  except Exception as e:  # noqa: BLE001 - e.g. credentials that name no project
    return f"no Google Cloud Storage client ({_first_line(e)})"
  try:
    if not client.bucket(bucket).exists(timeout=REACH_TIMEOUT_S / 2, retry=None):
      return f"bucket {bucket} does not exist"
  except api.Forbidden as e:
    return f"no access to bucket {bucket} ({_first_line(e)})"
  except google.auth.exceptions.RefreshError as e:
    return f"the Google Cloud credentials were refused ({_first_line(e)})"
  except Exception as e:  # noqa: BLE001 - no route, no DNS, a timeout: what the user must fix is the network
    return f"cannot reach Google Cloud Storage ({_first_line(e)})"
  return None


@functools.cache
def bucket_problem(bucket: str) -> str | None:
  """Why gs://`bucket` cannot be used (no credentials, unreachable, no access, absent), or None, within
  REACH_TIMEOUT_S: through google-cloud-storage, in a thread given that long (a network that drops
  packets would hold a request for minutes), with urllib3's retry warnings kept off the terminal.
  TensorFlow's gfile (etils' gs:// backend when TF is installed) retries for minutes before it fails."""
  import threading

  found: list = []
  urllib3_log = logging.getLogger("urllib3")
  level = urllib3_log.level
  urllib3_log.setLevel(logging.ERROR)
  try:
    probe = threading.Thread(target=lambda: found.append(_probe(bucket)), name="xtjax-gcs-probe", daemon=True)
    probe.start()
    probe.join(REACH_TIMEOUT_S)
  finally:
    urllib3_log.setLevel(level)
  if not found:
    return f"cannot reach Google Cloud Storage (no answer within {REACH_TIMEOUT_S:.0f} s)"
  return found[0]


def require_reachable(path: str | os.PathLike) -> None:
  """One line naming `path` and the cause when its bucket cannot be used (checked once per bucket)."""
  text = os.fspath(path)
  if text.startswith("gs://"):
    problem = bucket_problem(text[len("gs://"):].split("/", 1)[0])
    if problem:
      raise ConfigError(f"{text}: {problem}")


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
  """Yields a temp file path next to `path`; renames it onto `path` only if the block succeeds.

  Remote `path`: the temp file is local and is written to `path` as one object after the block."""
  if is_remote(path):
    with tempfile.TemporaryDirectory(prefix="xtjax-stage-") as d:
      tmp = Path(d) / f"staged.tmp{suffix}"
      yield tmp
      upload(tmp, path)
    return
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
def atomic_dir(path: str | os.PathLike, last: str):
  """Yields a temp directory next to `path`; moves it onto `path` only if the block succeeds.

  Remote `path`: the temp directory is local; after the block the old folder is deleted (its `last`
  first) and the new files are written, `last` (the file readers take as the sign of a complete
  folder) after all the others."""
  if is_remote(path):
    with tempfile.TemporaryDirectory(prefix="xtjax-stage-") as d:
      yield Path(d)
      _upload_dir(Path(d), as_path(path), last)
    return
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


# ---- remote stores: whole-object writes, downloads, and a local mirror for appended files --------------


def upload(local: str | os.PathLike, dst: str | os.PathLike) -> None:
  """Writes local file `local` to `dst` as one object (no partial object is ever visible on GCS / S3)."""
  data = Path(local).read_bytes()
  with naming_errors(dst):
    as_path(dst).write_bytes(data)


def _upload_dir(local: Path, dst: epath.Path, last: str) -> None:
  files = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
  if last not in files:
    raise ValueError(f"{dst}: the folder written has no {last!r} (the file that marks it complete)")
  with naming_errors(dst):
    (dst / last).unlink(missing_ok=True)  # readers see the old folder as incomplete from here on
    if dst.exists():
      dst.rmtree()
  for rel in sorted(files, key=lambda f: f == last):
    upload(local / rel, dst / rel)


def _remote_files(root: epath.Path) -> Iterator[epath.Path]:
  """Every file under remote folder `root` (epath's `walk` drops the URL scheme on fsspec)."""
  for p in root.iterdir():
    if p.is_dir():
      yield from _remote_files(p)
    else:
      yield p


_DOWNLOADS: dict[str, Path] = {}


def local_dir(path: str | os.PathLike) -> Path:
  """A folder for libraries that read only local files (Hugging Face tokenizers): a local path as is,
  a remote one downloaded once per process into a temp folder."""
  if not is_remote(path):
    return Path(path)
  key = os.fspath(path)
  if key not in _DOWNLOADS:
    src, out = as_path(path), Path(tempfile.mkdtemp(prefix="xtjax-download-"))
    with naming_errors(src):
      for f in _remote_files(src):
        dst = out / f.relative_to(src).as_posix()
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(f.read_bytes())
    _DOWNLOADS[key] = out
  return _DOWNLOADS[key]


class Mirror:
  """A local folder standing in for remote folder `remote`, for files that grow by appending
  (metrics.jsonl, TensorBoard events), which object stores cannot append to. `pull` names files
  copied down first (to append to on resume); `sync` writes each changed file whole, at most every
  `every_s` seconds (forced on `close`)."""

  def __init__(self, remote: str | os.PathLike, pull: Collection[str] = (), every_s: float = 30.0):
    self.remote, self.every_s = as_path(remote), every_s
    self.local = Path(tempfile.mkdtemp(prefix="xtjax-mirror-"))
    self._sent: dict[str, tuple[int, int]] = {}
    for name in pull:
      src = self.remote / name
      with naming_errors(src):
        if src.exists():
          (self.local / name).write_bytes(src.read_bytes())
          self._sent[name] = self._signature(self.local / name)
    self._synced = time.monotonic()

  @staticmethod
  def _signature(p: Path) -> tuple[int, int]:
    st = p.stat()
    return st.st_size, st.st_mtime_ns

  def sync(self, force: bool = False) -> None:
    if not force and time.monotonic() - self._synced < self.every_s:
      return
    for p in sorted(self.local.rglob("*")):
      rel = p.relative_to(self.local).as_posix()
      if p.is_file() and self._sent.get(rel) != self._signature(p):
        upload(p, self.remote / rel)
        self._sent[rel] = self._signature(p)
    self._synced = time.monotonic()

  def close(self) -> None:
    self.sync(force=True)
    shutil.rmtree(self.local, ignore_errors=True)
