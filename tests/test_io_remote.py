"""Remote run directories in xtjax.io_utils, against the stand-in bucket (tests/fake_gcs.py, no rename):
whole-object writes, folders whose marker file comes last, the Mirror for appended logs, downloads."""

import json

import pytest
from fake_gcs import fake_gcs

from xtjax import io_utils
from xtjax.errors import ConfigError


@pytest.fixture
def bucket(tmp_path, monkeypatch):
  with fake_gcs(tmp_path / "store", monkeypatch) as store:
    yield store / "b"


def test_paths_keep_urls_and_local_paths_as_printed(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  monkeypatch.setattr(io_utils, "missing_gcs_clients", lambda: ())
  monkeypatch.setattr(io_utils, "bucket_problem", lambda bucket: None)  # a reachable bucket (the probe: test_remote_fail_fast.py)
  assert str(io_utils.run_path("gs://b/run") / "best") == "gs://b/run/best"
  assert str(io_utils.run_path("runs/x")) == str(tmp_path / "runs/x")  # absolute, as before
  assert str(io_utils.as_path("runs/x")) == "runs/x"
  with pytest.raises(ConfigError, match=r"^memory://b/x: unsupported URL scheme"):
    io_utils.as_path("memory://b/x")
  with pytest.raises(ConfigError, match=r"^s3://b/run: a run directory is a local path or a gs:// URL"):
    io_utils.run_path("s3://b/run")
  monkeypatch.setattr(io_utils, "missing_gcs_clients", lambda: ("gcsfs", "google-cloud-storage"))
  with pytest.raises(ConfigError, match=r"^gs://b/run: a gs:// run directory needs gcsfs and google-cloud-storage "
                                       r"\(pip install gcsfs google-cloud-storage\)$"):
    io_utils.run_path("gs://b/run")


def test_files_are_written_once_whole_and_not_at_all_on_error(bucket):
  io_utils.write_text_atomic("gs://b/run/summary.json", "{}\n")
  with io_utils.atomic_path("gs://b/run/emb.npy", suffix=".npy") as tmp:
    assert tmp.suffix == ".npy" and "gs:" not in str(tmp)  # a local staging file
    tmp.write_bytes(b"x")
  with pytest.raises(RuntimeError):
    with io_utils.atomic_path("gs://b/run/half.txt") as tmp:
      tmp.write_text("half")
      raise RuntimeError("interrupted")
  assert sorted(p.name for p in (bucket / "run").iterdir()) == ["emb.npy", "summary.json"]
  assert (bucket / "run/summary.json").read_text() == "{}\n"


def test_a_folder_is_replaced_with_its_marker_written_last(bucket, monkeypatch):
  with io_utils.atomic_dir("gs://b/run/model", last="marker.json") as tmp:
    (tmp / "params").mkdir()
    (tmp / "params" / "w").write_text("old")
    (tmp / "stale").write_text("old")
    (tmp / "marker.json").write_text("{}")
  written = []
  upload = io_utils.upload
  monkeypatch.setattr(io_utils, "upload", lambda src, dst: (written.append(str(dst)), upload(src, dst)))
  with io_utils.atomic_dir("gs://b/run/model", last="marker.json") as tmp:
    (tmp / "marker.json").write_text("{}")
    (tmp / "params").mkdir()
    (tmp / "params" / "w").write_text("new")
  assert written == ["gs://b/run/model/params/w", "gs://b/run/model/marker.json"]
  assert not (bucket / "run/model/stale").exists() and (bucket / "run/model/params/w").read_text() == "new"
  with pytest.raises(ValueError, match="gs://b/run/other: the folder written has no 'marker.json'"):
    with io_utils.atomic_dir("gs://b/run/other", last="marker.json") as tmp:
      (tmp / "w").write_text("x")
  assert not (bucket / "run/other").exists()


def test_mirror_appends_to_a_remote_log_and_writes_it_whole(bucket):
  (bucket / "run").mkdir(parents=True)
  (bucket / "run/metrics.jsonl").write_text('{"step": 1}\n')
  mirror = io_utils.Mirror("gs://b/run", pull=("metrics.jsonl",), every_s=3600)
  with open(mirror.local / "metrics.jsonl", "a") as f:
    f.write('{"step": 2}\n')
  (mirror.local / "tb").mkdir()
  (mirror.local / "tb" / "events").write_bytes(b"e")
  mirror.sync()  # within every_s: nothing written yet
  assert (bucket / "run/metrics.jsonl").read_text() == '{"step": 1}\n'
  mirror.close()
  assert [json.loads(x)["step"] for x in (bucket / "run/metrics.jsonl").read_text().splitlines()] == [1, 2]
  assert (bucket / "run/tb/events").read_bytes() == b"e" and not mirror.local.exists()


def test_local_dir_downloads_a_remote_folder_once(bucket):
  (bucket / "tok/sub").mkdir(parents=True)
  (bucket / "tok/tokenizer.json").write_text("{}")
  (bucket / "tok/sub/x").write_text("y")
  local = io_utils.local_dir("gs://b/tok")
  assert (local / "tokenizer.json").read_text() == "{}" and (local / "sub/x").read_text() == "y"
  assert io_utils.local_dir("gs://b/tok") == local
  assert io_utils.local_dir(bucket) == bucket  # a local folder as is
