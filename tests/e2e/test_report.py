"""`xtjax report` tabulates zero-shot results of several runs."""

import json

from xtjax.cli.main import main


def test_report_compares_runs(tmp_path, capsys):
  a, b = tmp_path / "epochs1", tmp_path / "epochs10"
  for run, xnli, pos in ((a, 70.0, 75.0), (b, 72.0, 71.0)):
    run.mkdir()
    zs = {"xnli": {"en": {"accuracy": xnli + 10}, "avg": {"accuracy": xnli}},
          "udpos": {"avg": {"f1": pos, "precision": 0.0, "recall": 0.0}}}
    (run / "results.json").write_text(json.dumps({"zero_shot": zs}))
  assert main(["report", str(a), str(b), "--csv", str(tmp_path / "t.csv")]) == 0
  out = capsys.readouterr().out
  assert "| run | xnli | udpos | avg |" in out
  assert f"| {a} | 70.0 | 75.0 | 72.5 |" in out and f"| {b} | 72.0 | 71.0 | 71.5 |" in out
  assert (tmp_path / "t.csv").read_text().splitlines()[1] == f"{a},70.0,75.0,72.5"
  assert main(["report", str(tmp_path / "nope")]) == 2
