"""An in-process stand-in for a `gs://` bucket: the same bytes seen by etils.epath (through fsspec) and by
Orbax's TensorStore, kept under a local folder, with no rename (like an object store).

What is replaced, and why each is needed offline:
- xtjax's check that the Google clients are installed (gcsfs or TensorFlow, google-cloud-storage);
- fsspec's `gcs` protocol (etils.epath's backend for gs://): a DirFileSystem over `root` that refuses
  `mv`, so code that renames on a bucket fails here as it would be slow or non-atomic on GCS;
- etils' choice of TensorFlow's gfile when TF is installed: off, so gs:// goes through fsspec;
- Orbax's TensorStore kvstore for gs:// (the `gcs` driver speaks HTTP to Google): the `file` driver on
  the same folder;
- Orbax's hierarchical-namespace probe (asks the GCS API about the bucket): a flat bucket;
- google-cloud-storage's client (xtjax's bucket probe and run-directory leases): `FakeClient`, objects
  in the same folder with generations, and `if_generation_match` preconditions as GCS checks them.
`unreachable=True` is a bucket behind a network that resolves no host: the client's requests and every
fsspec call fail as they would without a route to Google.
Everything else is Orbax's own gs:// path (commit_success files instead of renames, GCS deletes).
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import fsspec  # noqa: F401 - fsspec.registry below
from fsspec.implementations.dirfs import DirFileSystem
from fsspec.implementations.local import LocalFileSystem


NO_ROUTE = "HTTPSConnectionPool(host='storage.googleapis.com', port=443): Could not resolve host"


class FakeBlob:
  """One object of the fake bucket: a file under `root/bucket/name`; its generation counts its writes."""

  def __init__(self, client, bucket: str, name: str):
    self.client, self.key, self.generation = client, f"{bucket}/{name}", None
    self.path = client.root / bucket / name

  def _check(self, if_generation_match):
    from google.api_core import exceptions

    current = self.client.generations.setdefault(self.key, 1) if self.path.exists() else 0
    if if_generation_match is not None and if_generation_match != current:
      raise exceptions.PreconditionFailed(f"{self.key}: generation {current}, not {if_generation_match}")
    return current

  def upload_from_string(self, data, if_generation_match=None, **kwargs):
    self.client.request()
    with self.client.lock:
      self._check(if_generation_match)
      self.path.parent.mkdir(parents=True, exist_ok=True)
      self.path.write_bytes(data.encode() if isinstance(data, str) else data)
      self.generation = self.client.generations[self.key] = self.client.generations.get(self.key, 0) + 1

  def download_as_bytes(self, **kwargs):
    from google.api_core import exceptions

    self.client.request()
    with self.client.lock:
      if not self.path.exists():
        raise exceptions.NotFound(self.key)
      self.generation = self.client.generations.setdefault(self.key, 1)
      return self.path.read_bytes()

  def delete(self, if_generation_match=None, **kwargs):
    from google.api_core import exceptions

    self.client.request()
    with self.client.lock:
      if not self.path.exists():
        raise exceptions.NotFound(self.key)
      self._check(if_generation_match)
      self.path.unlink()


class FakeClient:
  """google.cloud.storage.Client over the fake bucket's folder."""

  def __init__(self, root: Path, unreachable: bool):
    import threading

    self.root, self.unreachable, self.generations, self.lock = root, unreachable, {}, threading.Lock()

  def request(self):
    if self.unreachable:
      import requests

      raise requests.exceptions.ConnectionError(NO_ROUTE)

  def bucket(self, name: str):
    client = self

    class Bucket:
      def blob(self, key: str):
        return FakeBlob(client, name, key)

      def exists(self, **kwargs):
        client.request()
        return True

    return Bucket()


@contextlib.contextmanager
def fake_gcs(root: Path, monkeypatch, unreachable: bool = False):
  from etils.epath import backend, gpath
  from orbax.checkpoint._src.path import gcs_utils

  from xtjax import io_utils

  class FakeGCS(DirFileSystem):
    protocol = ("gs", "gcs")
    cachable = False

    def __init__(self, *args, finalize_on_close=None, **kwargs):
      if unreachable:
        raise OSError(NO_ROUTE)
      super().__init__(path=str(root), fs=LocalFileSystem(auto_mkdir=True), **kwargs)

    def mv(self, *args, **kwargs):
      raise OSError("the fake bucket has no rename (an object store copies and deletes)")

  def kvstore(path):
    bucket, key = gcs_utils.parse_gcs_path(path, add_trailing_slash=False)
    return {"driver": "file", "path": os.path.join(str(root), bucket, key)}

  registry = sys.modules["fsspec.registry"]._registry  # fsspec.register_implementation cannot undo
  for protocol in FakeGCS.protocol:
    monkeypatch.setitem(registry, protocol, FakeGCS)
  monkeypatch.setattr(io_utils, "missing_gcs_clients", lambda: ())  # the clients that would talk to Google
  monkeypatch.setattr(gpath, "_is_tf_installed", lambda: False)
  monkeypatch.setattr(gcs_utils, "get_kvstore_for_gcs", kvstore)
  monkeypatch.setattr(gcs_utils, "is_hierarchical_namespace_enabled", lambda path: False)
  client = FakeClient(root, unreachable)
  monkeypatch.setattr(io_utils, "gcs_client", lambda: client)
  backend.fsspec_backend._get_filesystem.cache_clear()
  io_utils.bucket_problem.cache_clear()
  try:
    yield root
  finally:
    backend.fsspec_backend._get_filesystem.cache_clear()
    io_utils.bucket_problem.cache_clear()
