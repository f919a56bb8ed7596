"""One writer per run directory: `<run>/lease.json` names its holder (host, pid, start time) and a
heartbeat the holder refreshes every HEARTBEAT_S seconds.

A second writer gets one line naming the holder. A lease whose holder is dead is taken over with one
line saying so: on the same host when its pid is gone (or is another process now), elsewhere (another
host on a shared disk, or a bucket) when its heartbeat is older than STALE_S. Locally the lease is
created with O_EXCL; on gs:// it is a write-once object (`if_generation_match=0`), replaced and deleted
only at the generation its holder wrote, so two writers can never both hold it.

On a pod, process 0 holds the lease for every process of the run and tells the others the outcome.
A process that takes a lease it already holds (the sweep's cell, then the trainer in it) nests.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import json
import logging
import os
import socket
import threading
import time
import uuid

from etils import epath

from xtjax.errors import XtjaxError
from xtjax.io_utils import as_path, is_remote

log = logging.getLogger(__name__)

LEASE_FILE = "lease.json"
HEARTBEAT_S = 10.0  # the holder rewrites its heartbeat this often
STALE_S = 60.0  # a lease of another host whose heartbeat is older than this is dead (6 missed beats)


class LeaseHeld(XtjaxError):
  """Another live process writes into the run directory."""


def _pid_start(pid: int) -> str | None:
  """The kernel's start time of `pid` (so a reused pid is not mistaken for the holder), or None."""
  try:
    return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[19]
  except (OSError, IndexError):
    return None


def _alive(pid: int, start: str | None) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # another user's process
    pass
  return start is None or _pid_start(pid) in (None, start)


def _when(t: float) -> str:
  return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def describe(holder: dict) -> str:
  age = time.time() - float(holder.get("heartbeat", 0))
  return (f"pid {holder.get('pid')} on {holder.get('host')} (started {_when(float(holder.get('started', 0)))}, "
          f"last heartbeat {age:.0f} s ago)")


def why_dead(holder: dict, now: float | None = None) -> str | None:
  """Why `holder`'s lease may be taken over, or None while it may still be writing."""
  if holder.get("host") == socket.gethostname():
    if not _alive(int(holder.get("pid", -1)), holder.get("pid_start")):
      return "its process is gone"
    return None
  age = (now or time.time()) - float(holder.get("heartbeat", 0))
  return f"no heartbeat for {age:.0f} s > {STALE_S:.0f} s" if age > STALE_S else None


# ---- where the lease lives: a local file, or a write-once GCS object --------------------------------


class _LocalStore:
  """`lease.json` on a local (or shared) disk: created with O_EXCL, replaced by rename."""

  def __init__(self, path: epath.Path):
    self.path = os.fspath(path)

  def create(self, data: str) -> bool:
    try:
      fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
      return False
    with os.fdopen(fd, "w") as f:
      f.write(data)
    return True

  def read(self) -> tuple[dict, object] | None:
    try:
      text = open(self.path).read()
    except FileNotFoundError:
      return None
    try:
      return json.loads(text), text
    except json.JSONDecodeError:  # a creator between O_EXCL and its write: a lease, not yet readable
      return {"host": "?", "pid": -1, "heartbeat": time.time(), "started": time.time()}, text

  def replace(self, data: str, version) -> object | None:
    now = self.read()
    if now is None or now[1] != version:
      return None
    tmp = f"{self.path}.{uuid.uuid4().hex}.tmp"
    with open(tmp, "w") as f:
      f.write(data)
    os.replace(tmp, self.path)
    return data

  def delete(self, version) -> bool:
    now = self.read()
    if now is None or now[1] != version:
      return False
    with contextlib.suppress(FileNotFoundError):
      os.unlink(self.path)
    return True

  @contextlib.contextmanager
  def exclusive(self):
    """Serialises takeovers (re-read, delete, create) among processes sharing this disk."""
    guard = f"{self.path}.takeover"
    for _ in range(200):
      try:
        os.close(os.open(guard, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        break
      except FileExistsError:
        with contextlib.suppress(FileNotFoundError):
          if time.time() - os.stat(guard).st_mtime > 30:  # left by a process killed mid-takeover
            os.unlink(guard)
        time.sleep(0.05)
    try:
      yield
    finally:
      with contextlib.suppress(FileNotFoundError):
        os.unlink(guard)


class _GcsStore:
  """`lease.json` as a GCS object: written only if absent (generation 0), replaced and deleted only at
  the generation read, so of two writers racing exactly one succeeds."""

  def __init__(self, path: epath.Path):
    from google.api_core import exceptions

    from xtjax import io_utils

    bucket, _, name = os.fspath(path)[len("gs://"):].partition("/")
    self.blob = lambda: io_utils.gcs_client().bucket(bucket).blob(name)
    self.lost = (exceptions.PreconditionFailed, exceptions.NotFound)

  def create(self, data: str) -> bool:
    try:
      self.blob().upload_from_string(data, if_generation_match=0)
      return True
    except self.lost:
      return False

  def read(self) -> tuple[dict, object] | None:
    blob = self.blob()
    try:
      text = blob.download_as_bytes()
    except self.lost:
      return None
    return json.loads(text), blob.generation

  def replace(self, data: str, version) -> object | None:
    blob = self.blob()
    try:
      blob.upload_from_string(data, if_generation_match=version)
    except self.lost:
      return None
    return blob.generation

  def delete(self, version) -> bool:
    try:
      self.blob().delete(if_generation_match=version)
      return True
    except self.lost:
      return False

  exclusive = contextlib.nullcontext  # the generation preconditions serialise


def _store(run_dir: epath.Path):
  return (_GcsStore if is_remote(run_dir) else _LocalStore)(run_dir / LEASE_FILE)


# ---- the lease ------------------------------------------------------------------------------------


class Lease:
  """This process's lease on one run directory (see the module docstring); `release()` ends it."""

  def __init__(self, run_dir: epath.Path, store, holder: dict, version, created_dir: bool):
    self.run_dir, self._store, self.holder, self._version = run_dir, store, holder, version
    self.created_dir, self.lost, self._depth = created_dir, False, 1
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._beat, name=f"xtjax-lease:{run_dir}", daemon=True)
    self._thread.start()

  def _beat(self) -> None:
    while not self._stop.wait(HEARTBEAT_S):
      holder = dict(self.holder, heartbeat=time.time())
      try:
        version = self._store.replace(json.dumps(holder), self._version)
      except Exception as e:  # noqa: BLE001 - a missed beat is retried; a long outage lets another take over
        log.warning("%s: lease heartbeat failed (%s: %s)", self.run_dir, type(e).__name__, e)
        continue
      if version is None:
        self.lost = True
        log.error("%s: lease lost: another process took over the run directory", self.run_dir)
        return
      self.holder, self._version = holder, version

  def release(self) -> None:
    """Ends the lease (the outermost of nested takes); a run directory that this lease created and
    that holds nothing else (a start that failed) is removed."""
    self._depth -= 1
    if self._depth > 0:
      return
    _HELD.pop(os.fspath(self.run_dir), None)
    self._stop.set()
    self._thread.join(timeout=5)
    if not self.lost:
      with contextlib.suppress(Exception):
        self._store.delete(self._version)
    if self.created_dir and not is_remote(self.run_dir):
      with contextlib.suppress(OSError):
        os.rmdir(self.run_dir)  # only when empty


_HELD: dict[str, Lease] = {}


@atexit.register
def _release_all() -> None:
  for lease in list(_HELD.values()):
    lease._depth = 1
    lease.release()


def _take(run_dir: epath.Path) -> Lease:
  key = os.fspath(run_dir)
  if key in _HELD:
    _HELD[key]._depth += 1
    return _HELD[key]
  created = not run_dir.exists()
  run_dir.mkdir(parents=True, exist_ok=True)
  store = _store(run_dir)
  now = time.time()
  holder = {"host": socket.gethostname(), "pid": os.getpid(), "pid_start": _pid_start(os.getpid()),
            "started": now, "heartbeat": now, "token": uuid.uuid4().hex}
  data = json.dumps(holder)
  if not store.create(data):
    with store.exclusive():
      current = store.read()
      if current is not None:
        reason = why_dead(current[0])
        if reason is None:
          if created:
            with contextlib.suppress(OSError):
              os.rmdir(run_dir)
          raise LeaseHeld(f"{run_dir}: in use by {describe(current[0])}; wait for it to finish, or stop it")
        store.delete(current[1])
        log.warning("%s: taking over the lease of %s: %s", run_dir, describe(current[0]), reason)
      if not store.create(data):
        current = store.read()
        raise LeaseHeld(f"{run_dir}: in use by {describe(current[0]) if current else 'another process'}; "
                        "wait for it to finish, or stop it")
  version = store.read()[1]
  lease = _HELD[key] = Lease(run_dir, store, holder, version, created)
  return lease


class _Nothing:
  """What a non-zero process of a pod holds: process 0 holds the run's lease for it."""

  lost = False

  def release(self) -> None:
    pass


def acquire(run_dir: epath.PathLike) -> Lease | _Nothing:
  """Takes the lease of `run_dir` (creating the directory), or raises LeaseHeld naming the holder.
  Every process of a pod calls this; process 0 takes the lease and all raise the same error."""
  import jax

  run_dir = as_path(run_dir)
  if jax.process_count() == 1:
    return _take(run_dir)
  from xtjax.parallel.distributed import allgather_bytes

  lease, error = _Nothing(), b""
  if jax.process_index() == 0:
    try:
      lease = _take(run_dir)
    except LeaseHeld as e:
      error = str(e).encode()
  error = allgather_bytes(error)[0]
  if error:
    raise LeaseHeld(error.decode())
  return lease


def holder_of(run_dir: epath.PathLike) -> dict | None:
  """The live holder of `run_dir`'s lease (None when free or its holder is dead)."""
  current = _store(as_path(run_dir)).read()
  return current[0] if current is not None and why_dead(current[0]) is None else None
