"""The tiny three-phase pipeline end to end, offline: pretrained -> MNLI -> XNLI + Tatoeba."""

import json
from pathlib import Path

import pytest

from xtjax.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_tiny_pipeline_end_to_end_and_rerun_skips(tmp_path, tiny_hf, capsys, caplog):
  from xtjax.tiny import write_tiny_xtreme

  model = tiny_hf("xlm-roberta")
  write_tiny_xtreme(tmp_path / "data", n_train=120, n_eval=30)
  text = (ROOT / "configs/tiny/pipeline.yaml").read_text()
  text = text.replace("runs/demo/hf-tiny-xlmr", str(model)).replace("runs/demo", str(tmp_path))
  cfg = tmp_path / "pipeline.yaml"
  cfg.write_text(text)
  work = tmp_path / "run"
  assert main(["pipeline", str(cfg), "--workdir", str(work), "intermediate.train.epochs=2",
               "defaults.cache_dir=" + str(tmp_path / "cache")]) == 0
  out = capsys.readouterr().out
  assert "zero-shot results" in out and "xnli" in out and "tatoeba" in out
  res = json.loads((work / "results.json").read_text())
  assert set(res["zero_shot"]["xnli"]) == {"en", "de", "es", "avg"}
  assert set(res["zero_shot"]["tatoeba"]) == {"de", "es", "avg"}
  for lang in ("en", "de", "es"):
    assert 0.0 <= res["zero_shot"]["xnli"][lang]["accuracy"] <= 100.0
  # Phase bridging: both targets started from the intermediate phase's encoder.
  for target in ("target-xnli", "target-tatoeba"):
    summary = json.loads((work / target / "summary.json").read_text())
    assert summary["start"].startswith("init_from") and "intermediate-mnli" in summary["start"]
  # Zero-shot predictions in XTREME's submission layout, one label per line.
  assert len((work / "target-xnli" / "predictions" / "xnli" / "test-de.tsv").read_text().splitlines()) == 30
  # Re-running skips every finished phase.
  caplog.clear()
  with caplog.at_level("INFO"):
    assert main(["pipeline", str(cfg), "--workdir", str(work), "intermediate.train.epochs=2",
                 "defaults.cache_dir=" + str(tmp_path / "cache")]) == 0
  assert caplog.text.count("skipped") == 3
  # A changed config in the same workdir is an error naming the phase and key, before anything trains.
  capsys.readouterr()
  assert main(["pipeline", str(cfg), "--workdir", str(work), "intermediate.train.epochs=1",
               "defaults.cache_dir=" + str(tmp_path / "cache")]) != 0
  assert "(intermediate-mnli: epochs); pass --overwrite" in capsys.readouterr().err
  # Zero-shot evaluation of a finished run on a language subset.
  capsys.readouterr()
  assert main(["eval", "--checkpoint", str(work / "target-xnli"), "--task", "xnli", "--languages", "de", "--json"]) == 0
  ev = json.loads(capsys.readouterr().out)
  assert ev["xnli"]["de"] == res["zero_shot"]["xnli"]["de"]
