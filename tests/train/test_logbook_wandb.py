"""`report_to: [tensorboard, wandb]`: a tiny training run's metrics land in W&B's offline run file (read
back with W&B's own record protobuf), the same values as metrics.jsonl; no network (WANDB_MODE=offline)."""

import json
import struct
from pathlib import Path

import pytest

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tiny" / "toy_cls.yaml"


def read_wandb_records(path: Path) -> tuple[list[str], list[dict]]:
  """Record kinds and history rows of a `.wandb` file: a 7-byte W&B header, then LevelDB-log records (32 KiB blocks, each
  chunk: crc32, length, type) holding `wandb_internal_pb2.Record` protobufs."""
  from wandb.proto import wandb_internal_pb2 as pb

  data = path.read_bytes()
  assert data[:4] == b":W&B"
  block, pos, buf, kinds, rows = 32768, 7, b"", [], []
  while pos + 7 <= len(data):
    left = block - pos % block
    if left < 7:  # block trailer
      pos += left
      continue
    _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
    pos += 7
    buf += data[pos:pos + length]
    pos += length
    if kind in (1, 4):  # FULL or LAST chunk
      rec = pb.Record()
      rec.ParseFromString(buf)
      buf = b""
      kinds.append(rec.WhichOneof("record_type"))
      if kinds[-1] == "history":
        rows.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in rec.history.item})
  return kinds, rows


@pytest.mark.slow
def test_wandb_offline_run_holds_the_runs_metrics(tmp_path, tiny_hf, monkeypatch):
  pytest.importorskip("wandb")
  from xtjax import config as config_lib
  from xtjax.errors import ConfigError
  from xtjax.runs.schema import TrainConfig
  from xtjax.tasks.synthetic import write_toy_data
  from xtjax.train.loop import train

  monkeypatch.setenv("WANDB_MODE", "offline")
  monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
  monkeypatch.setenv("WANDB_SILENT", "true")
  (tmp_path / "wandb_dir").mkdir()
  data = write_toy_data(tmp_path / "toy", n_train=32, n_eval=8)
  d = config_lib.read_yaml(CONFIG)
  d["model"]["pretrained"] = str(tiny_hf("xlm-roberta"))
  d["tasks"][0]["data"]["path"] = str(data / "{split}.{lang}.jsonl")
  d["tasks"][0]["eval_languages"] = ["en", "de"]
  d.update(steps=4, log_every=1, eval_every=2, report_to=["tensorboard", "wandb"], mesh={"data": 1, "devices": 1},
           checkpoint={"async_save": False})
  cfg = config_lib.from_dict(TrainConfig, d, "test")
  run = tmp_path / "run"
  assert train(cfg, run)["status"] == "finished"

  files = list((tmp_path / "wandb_dir").glob("wandb/offline-run-*/run-*.wandb"))
  assert len(files) == 1
  kinds, history = read_wandb_records(files[0])
  assert kinds[-1] == "exit", kinds  # the run file is whole once train() returns (the sink waits for wandb-core)
  jsonl = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
  losses = {r["step"]: r["loss"] for r in jsonl if r["kind"] == "train/toy_cls"}
  assert sorted(losses) == [1, 2, 3, 4]
  assert {r["step"]: r["train/toy_cls/loss"] for r in history if "train/toy_cls/loss" in r} == pytest.approx(losses)
  dev = {r["step"]: r["accuracy"] for r in jsonl if r["kind"] == "dev/toy_cls"}
  assert {r["step"]: r["dev/toy_cls/accuracy"] for r in history if "dev/toy_cls/accuracy" in r} == dev
  assert any("zero_shot/toy_cls/de/accuracy" in r for r in history)
  assert list((run / "tb").glob("events.out.tfevents.*"))  # TensorBoard still written
  assert cfg.report_to == ("tensorboard", "wandb")
  with pytest.raises(ConfigError, match=r"report_to\[0\]: must be one of \['tensorboard', 'wandb'\]"):
    config_lib.from_dict(TrainConfig, dict(d, report_to=["mlflow"]), "test")
