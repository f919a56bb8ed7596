"""The three-phase pipeline with text-to-text tasks on a tiny random mT5: a mixed intermediate phase
(two text-to-text tasks at once) and a target phase that starts from the whole intermediate
encoder-decoder (decoder and LM head included: a text-to-text head has no parameters to replace)."""

import json

import jax
import numpy as np
import pytest
import yaml
from t5_fixtures import tiny_t5_folder

from xtjax.runs.info import read_run_config
from xtjax.cli.main import main
from xtjax.models.loading import load_pretrained
from xtjax.parallel.mesh import MeshConfig, make_mesh
from xtjax.parallel.rules import DEFAULT_RULES
from xtjax.train.optim import path_str
from xtjax.train.setup import encoder_start


def _flat(params) -> dict:
  return {path_str(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(params)}


@pytest.mark.slow
def test_mixed_text_to_text_intermediate_then_target_from_the_whole_encoder_decoder(tmp_path_factory, tmp_path):
  from xtjax.tiny import write_tiny_xtreme

  folder = tiny_t5_folder(tmp_path_factory, "mt5")
  data = write_tiny_xtreme(tmp_path / "data", n_train=48, n_eval=8)
  mnli = {"train": str(data / "mnli/train.tsv"), "dev": str(data / "mnli/dev_matched.tsv")}
  conf = {
      "name": "tiny-t2t",
      "defaults": {"model": {"pretrained": str(folder)}, "batch_size": 8, "eval_batch_size": 8, "log_every": 1,
                   "features": {"max_length": 64, "max_target_length": 6}, "mesh": {"data": 1, "devices": 1},
                   "optim": {"optimizer": "adafactor", "learning_rate": 1e-2, "schedule": "constant",
                             "warmup_steps": 0, "weight_decay": 0.0, "max_grad_norm": None},
                   "cache_dir": str(tmp_path / "cache")},
      "intermediate": {"name": "intermediate-mixed", "train": {"steps": 6, "zero_shot": False, "tasks": [
          {"name": "mnli_t2t", "data": {"files": mnli}},
          {"name": "toy_cls_t2t", "data": {"path": str(data / "toy/{split}.{lang}.jsonl")}}]}},
      "targets": [{"name": "target-xnli", "train": {"steps": 2, "tasks": [
          {"name": "xnli_t2t", "data": {"files": {**mnli, "test": str(data / "xnli/xnli.test.tsv")}},
           "eval_languages": ["de"]}]}}],
  }
  (tmp_path / "p.yaml").write_text(yaml.safe_dump(conf))
  work = tmp_path / "run"
  assert main(["pipeline", str(tmp_path / "p.yaml"), "--workdir", str(work)]) == 0

  # Mixed intermediate training: both tasks took steps and were evaluated by generation on their dev sets.
  inter = work / "intermediate-mixed"
  trained = {json.loads(line)["kind"] for line in (inter / "metrics.jsonl").read_text().splitlines()}
  assert {"train/mnli_t2t", "train/toy_cls_t2t"} <= trained, trained
  summary = json.loads((inter / "summary.json").read_text())
  assert set(summary["best"]["dev"]) == {"mnli_t2t", "toy_cls_t2t"}
  assert set(summary["truncation"]) == {"mnli_t2t", "toy_cls_t2t"}
  assert "target_truncation_rate" in summary["truncation"]["mnli_t2t"]["train"]

  # Bridging: the target phase starts from the intermediate run's whole encoder-decoder (trained,
  # so different from the pretrained weights), and evaluates zero-shot by generation.
  target_cfg = read_run_config(work / "target-xnli")
  start = encoder_start(target_cfg, make_mesh(MeshConfig(devices=1)), DEFAULT_RULES)
  assert start.source.startswith("init_from") and "intermediate-mixed" in start.source
  got = _flat(start.params)
  exported = _flat(load_pretrained(str(inter / "model")).params)
  pretrained = _flat(load_pretrained(str(folder)).params)
  assert got.keys() == exported.keys() == pretrained.keys()
  assert any(k.startswith("decoder/") for k in got) and "lm_head" in got
  for k in got:
    np.testing.assert_array_equal(got[k], exported[k], err_msg=k)
  for k in ("lm_head", "decoder/layers/1/ffn/wo", "encoder/layers/0/attention/q"):
    assert not np.allclose(got[k], pretrained[k]), f"{k} was not trained in the intermediate phase"
  res = json.loads((work / "results.json").read_text())
  assert set(res["zero_shot"]["xnli_t2t"]) == {"de", "avg"}
