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


def test_report_per_language_in_benchmark_order_and_dev_of_each_phase(tmp_path, capsys):
  from xtjax.experiments.pipeline import zero_shot_table
  from xtjax.experiments.report import language_order
  from xtjax.tasks.xtreme import benchmark_tasks

  xnli_order = benchmark_tasks("xtreme")["xnli"].languages
  en_de = [x for x in xnli_order if x in ("de", "en")]
  assert language_order("xnli", ["zz", "de", "avg", "en"]) == en_de + ["zz", "avg"]
  assert language_order("toy_cls", ["es", "avg", "de"]) == ["de", "es", "avg"]
  pipe = tmp_path / "pipe"
  pipe.mkdir()
  zs = {"xnli": {lang: {"accuracy": v} for lang, v in (("avg", 70.0), ("de", 65.0), ("en", 75.0))}}
  phases = {"intermediate-mnli": {"step": 30, "best": {"dev": {"mnli": {"accuracy": 81.25}}}},
            "target-xnli": {"step": 20, "best": {"dev": {"xnli": {"accuracy": 77.0}}}}}
  (pipe / "results.json").write_text(json.dumps({"zero_shot": zs, "phases": phases}, sort_keys=True))
  inter = tmp_path / "intermediate"
  inter.mkdir()
  (inter / "summary.json").write_text(json.dumps({"status": "finished", "step": 30, "zero_shot": {},
                                                  "best": {"dev": {"mnli": {"accuracy": 81.25}}}}))
  assert main(["report", str(pipe), str(inter)]) == 0
  out = capsys.readouterr().out
  assert "nan" not in out
  assert f"| {inter} | - | - |" in out  # no zero-shot scores: no number, not nan
  assert f"| run | {' | '.join(en_de)} | avg |" in out
  assert f"| {pipe} | " + " | ".join({"en": "75.0", "de": "65.0"}[x] for x in en_de) + " | 70.0 |" in out
  assert f"| {pipe} | intermediate-mnli | 30 | mnli accuracy 81.2 |" in out
  assert f"| {inter} | - | 30 | mnli accuracy 81.2 |" in out
  # The pipeline's table: the same column order from a fresh run's dict or a re-read sorted file.
  fresh = {"xnli": {"en": {"accuracy": 75.0}, "de": {"accuracy": 65.0}, "avg": {"accuracy": 70.0}}}
  assert zero_shot_table(fresh) == zero_shot_table(json.loads(json.dumps(fresh, sort_keys=True)))
  assert zero_shot_table(fresh).splitlines()[0].split()[2:] == en_de + ["avg"]
