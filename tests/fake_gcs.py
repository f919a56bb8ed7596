"""An in-process stand-in for a `gs://` bucket: the same bytes seen by etils.epath (through fsspec) and by
Orbax's TensorStore, kept under a local folder, with no rename (like an object store).

What is replaced, and why each is needed offline:
- xtjax's check that the Google clients are installed (gcsfs or TensorFlow, google-cloud-storage);
- fsspec's `gcs` protocol (etils.epath's backend for gs://): a DirFileSystem over `root` that refuses
  `mv`, so code that renames on a bucket fails here as it would be slow or non-atomic on GCS;
- etils' choice of TensorFlow's gfile when TF is installed: off, so gs:// goes through fsspec;
- Orbax's TensorStore kvstore for gs:// (the `gcs` driver speaks HTTP to Google): the `file` driver on
  the same folder;
- Orbax's hierarchical-namespace probe (asks the GCS API about the bucket): a flat bucket.
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


@contextlib.contextmanager
def fake_gcs(root: Path, monkeypatch):
  from etils.epath import backend, gpath
  from orbax.checkpoint._src.path import gcs_utils

  from xtjax import io_utils

  class FakeGCS(DirFileSystem):
    protocol = ("gs", "gcs")
    cachable = False

    def __init__(self, *args, finalize_on_close=None, **kwargs):
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
  backend.fsspec_backend._get_filesystem.cache_clear()
  try:
    yield root
  finally:
    backend.fsspec_backend._get_filesystem.cache_clear()
