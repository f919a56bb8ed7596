"""Atomic writes give the modes a plain open / mkdir would (the umask decides), not mkstemp's 0600."""

import os
import stat

import pytest

from xtjax import io_utils


@pytest.fixture
def with_umask():
  old = os.umask(0o022)

  def set_mask(mask):
    os.umask(mask)
    io_utils.umask.cache_clear()

  yield set_mask
  os.umask(old)
  io_utils.umask.cache_clear()


@pytest.mark.parametrize("mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775),
                                                       (0o077, 0o600, 0o700)])
def test_outputs_respect_the_umask(tmp_path, with_umask, mask, file_mode, dir_mode):
  with_umask(mask)
  io_utils.write_text_atomic(tmp_path / "summary.json", "{}\n")
  with io_utils.atomic_path(tmp_path / "emb.npy") as tmp:
    tmp.write_bytes(b"x")
  with io_utils.atomic_dir(tmp_path / "model", last="config.json") as tmp:
    (tmp / "config.json").write_text("{}")
  assert stat.S_IMODE((tmp_path / "summary.json").stat().st_mode) == file_mode
  assert stat.S_IMODE((tmp_path / "emb.npy").stat().st_mode) == file_mode
  assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == dir_mode
  assert stat.S_IMODE((tmp_path / "model" / "config.json").stat().st_mode) == file_mode
