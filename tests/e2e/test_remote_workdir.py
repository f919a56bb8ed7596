"""The tiny pipeline into a `gs://` run directory (an in-process stand-in bucket, tests/fake_gcs.py):
trains, is preempted, resumes, and `report` / `eval` read it; nothing touches the local disk by the URL."""

import json
import os
from pathlib import Path

import pytest

from xtjax.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_tiny_pipeline_into_a_bucket_resumes_and_reports(tmp_path, tiny_hf, capsys, caplog, monkeypatch):
  from fake_gcs import fake_gcs

  from xtjax.experiments.pipeline import load_pipeline, phase_configs
  from xtjax.io_utils import run_path
  from xtjax.tiny import write_tiny_xtreme
  from xtjax.train.loop import train

  model = tiny_hf("xlm-roberta")
  write_tiny_xtreme(tmp_path / "data", n_train=120, n_eval=30)
  text = (ROOT / "configs/tiny/pipeline.yaml").read_text()
  cfg = tmp_path / "pipeline.yaml"
  cfg.write_text(text.replace("runs/demo/hf-tiny-xlmr", str(model)).replace("runs/demo", str(tmp_path)))
  cwd = tmp_path / "cwd"
  cwd.mkdir()
  monkeypatch.chdir(cwd)  # a URL mistaken for a local path would appear here as `gs:/...`
  with fake_gcs(tmp_path / "bucket-store", monkeypatch) as store:
    url = "gs://bucket/exp/run"
    overrides = ["intermediate.train.epochs=2", "defaults.log_every=1"]
    # Preempted part-way through the intermediate phase, then the pipeline resumes it.
    (name, tcfg, _), *_ = phase_configs(load_pipeline(cfg, overrides), run_path(url))
    assert train(tcfg, f"{url}/{name}", stop_after_steps=3) == {"status": "preempted", "step": 3}
    assert main(["pipeline", str(cfg), "--workdir", url, *overrides]) == 0
    local = store / "bucket/exp/run"
    summary = json.loads((local / name / "summary.json").read_text())
    assert summary["start"] == f"resumed from {url}/{name}/checkpoints at step 3"
    rows = [json.loads(line) for line in (local / name / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if r["kind"].startswith("train/")]
    assert steps == list(range(1, summary["step"] + 1))  # the resumed run appended to the preempted run's log
    assert list((local / name / "tb").iterdir())  # TensorBoard events mirrored up
    assert (local / name / "model" / "xtjax_model.json").exists()  # the exported encoder
    xnli = json.loads((local / "target-xnli" / "summary.json").read_text())
    assert xnli["start"] == f"init_from {url}/{name}/model"
    assert any((local / ".feature_cache" / "mnli").iterdir())  # the feature cache beside the phases
    res = json.loads((local / "results.json").read_text())
    assert set(res["zero_shot"]["xnli"]) == {"en", "de", "es", "avg"}
    # Nothing left half-written or staged next to the run, and nothing local named after the URL.
    names = [n for _, dirs, files in os.walk(store) for n in dirs + files]
    assert not [n for n in names if n.endswith((".tmp", ".old")) or ".tmp." in n], names
    assert os.listdir(cwd) == []
    # `report` and `eval` read the bucket.
    capsys.readouterr()
    assert main(["report", url]) == 0
    assert f"| {url} |" in capsys.readouterr().out
    assert main(["eval", "--checkpoint", f"{url}/target-xnli", "--task", "xnli", "--languages", "de", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["xnli"]["de"] == res["zero_shot"]["xnli"]["de"]
    assert main(["predict", "--checkpoint", f"{url}/target-xnli", "--task", "xnli", "--language", "de",
                 "--batch-sizes", "32", "--seq-lens", "64", "--out", f"{url}/predict/test-de.tsv"]) == 0
    assert (local / "predict/test-de.tsv").read_text() == (local / "target-xnli/predictions/xnli/test-de.tsv").read_text()
    # A rerun skips every finished phase.
    caplog.clear()
    with caplog.at_level("INFO"):
      assert main(["pipeline", str(cfg), "--workdir", url, *overrides]) == 0
    assert caplog.text.count("skipped") == 3
    assert os.listdir(cwd) == []
