"""Sweeps: expansion (shared intermediate runs, hash-identified cells), the run-directory ledger
(skip done, retry failed with the error kept, changed config = new cell), status and the report."""

import json
from pathlib import Path

import pytest

from xtjax.cli.main import main
from xtjax.experiments import sweep
from xtjax.io_utils import as_path

ROOT = Path(__file__).resolve().parents[2]

# cells, phase runs, intermediate runs per shipped sweep file
SHIPPED = {"phang2020_grid.yaml": (99, 109, 10), "rq_intermediate_epochs.yaml": (162, 177, 15),
           "rq_multilingual_vs_monolingual.yaml": (24, 28, 4), "rq_scale_xlmr.yaml": (28, 30, 2),
           "rq_scale_decoders.yaml": (56, 60, 4),
           "rq_size_vs_throughput.yaml": (18, 21, 3), "rq_domain_vs_general.yaml": (36, 45, 9),
           "rq_scale_mt5.yaml": (70, 75, 5), "tiny.yaml": (6, 8, 2)}


def test_every_shipped_sweep_loads_and_expands(tmp_path):
  files = sorted(p.name for p in (ROOT / "configs/experiments").glob("*.yaml"))
  assert files == sorted(SHIPPED)
  for name, (n_cells, n_runs, n_inter) in SHIPPED.items():
    cfg, pipeline = sweep.load_sweep(ROOT / "configs/experiments" / name)
    cells = sweep.expand(cfg, pipeline, tmp_path)
    runs = sweep.unique_runs(cells)
    print(f"{name}: {len(cells)} cells, {len(runs)} phase runs, {sum(r.kind == 'intermediate' for r in runs)} intermediate")
    assert (len(cells), len(runs), sum(r.kind == "intermediate" for r in runs)) == (n_cells, n_runs, n_inter), name
    assert all(r.kind == "intermediate" for r in runs[:n_inter])  # dependencies first
    assert len({c.name for c in cells}) == len(cells)


def test_phang_grid_shares_each_intermediate_run_across_targets(tmp_path):
  cfg, pipeline = sweep.load_sweep(ROOT / "configs/experiments/phang2020_grid.yaml")
  cells = sweep.expand(cfg, pipeline, tmp_path)
  by_inter = {}
  for c in cells:
    if c.intermediate != sweep.NONE:
      by_inter.setdefault(c.runs[0].run_dir, set()).add(c.target)
      assert c.runs[1].config.init_from == str(c.runs[0].run_dir)
    else:
      assert len(c.runs) == 1 and c.runs[0].config.init_from is None
  assert len(by_inter) == 10 and all(len(t) == 9 for t in by_inter.values())


def _tiny_sweep(tmp_path, epochs=(1, 3)):
  pipe = (ROOT / "configs/tiny/pipeline.yaml").read_text()
  (tmp_path / "pipeline.yaml").write_text(pipe)
  (tmp_path / "sweep.yaml").write_text(
      "name: t\npipeline: pipeline.yaml\nintermediate: [none, intermediate-mnli]\ntargets: [target-xnli]\nlatency: false\n"
      f"axes:\n  intermediate.train.epochs: {list(epochs)}\n  defaults.seed: [0, 1]\n")
  return sweep.load_sweep(tmp_path / "sweep.yaml")


class FakeTrain:
  """Records the runs it trains; fails the ones whose config matches `fail`; writes a summary."""

  def __init__(self, fail=None):
    self.calls, self.fail = [], fail

  def __call__(self, cfg, run_dir):
    self.calls.append((as_path(run_dir).name, cfg.epochs, cfg.seed))
    if self.fail and self.fail(cfg):
      raise RuntimeError("device lost")
    acc = 40.0 + 5 * cfg.epochs + cfg.seed + (10 if cfg.init_from else 0)
    zs = {"xnli": {"en": {"accuracy": acc + 1}, "de": {"accuracy": acc - 1}, "avg": {"accuracy": acc}}}
    (as_path(run_dir) / "summary.json").write_text(json.dumps({"status": "finished", "step": 1, "zero_shot": zs}))
    return {"status": "finished"}


def test_ledger_skips_done_retries_failed_and_a_changed_config_is_a_new_cell(tmp_path):
  cfg, pipeline = _tiny_sweep(tmp_path)
  work = tmp_path / "sw"
  # 2 seeds x (baseline + 2 epoch settings) = 6 cells; runs: 4 intermediate + 6 target.
  fake = FakeTrain(fail=lambda c: c.epochs == 3 and c.seed == 1 and c.init_from is None
                   and c.tasks[0].name == "mnli")
  counts = sweep.run_sweep(cfg, pipeline, work, train_fn=fake)
  assert counts == {"done": 5, "failed": 1}
  assert len(fake.calls) == 9  # the failed intermediate's target was not started
  failed = [p for p in (work / "runs").iterdir() if (p / "sweep_error.json").exists()]
  assert len(failed) == 1 and "device lost" in (failed[0] / "sweep_error.json").read_text()

  again = FakeTrain()
  counts = sweep.run_sweep(cfg, pipeline, work, train_fn=again)
  assert counts == {"done": 6}
  assert len(again.calls) == 2  # only the failed intermediate and its target
  assert "device lost" in (failed[0] / "sweep_error.json").read_text()  # the error is kept
  assert sweep.run_sweep(cfg, pipeline, work, train_fn=FakeTrain(fail=lambda c: True)) == {"done": 6}

  cfg2, _ = _tiny_sweep(tmp_path, epochs=(1, 2))  # a changed cell config is a new cell
  third = FakeTrain()
  assert sweep.run_sweep(cfg2, pipeline, work, train_fn=third) == {"done": 6}
  assert sorted((e, s) for _, e, s in third.calls) == [(2, 0), (2, 1), (3, 0), (3, 1)]  # inter epochs 2, targets


def test_status_and_report_from_the_ledger(tmp_path, capsys):
  cfg, pipeline = _tiny_sweep(tmp_path)
  work = tmp_path / "sw"
  sweep.run_sweep(cfg, pipeline, work, train_fn=FakeTrain())
  assert main(["sweep", "status", str(tmp_path / "sweep.yaml"), "--workdir", str(work)]) == 0
  out = capsys.readouterr().out
  assert "6 cells, 10 phase runs (4 intermediate)" in out and "6 done" in out
  assert main(["report", str(work)]) == 0
  out = capsys.readouterr().out
  # FakeTrain: target (3 epochs) 55 + seed (mean 55.5 +- 0.7 over seeds 0, 1); +10 from an intermediate run.
  assert "| none | 55.5 ± 0.7 | 55.5 |" in out
  assert "| intermediate-mnli epochs=1 | 65.5 ± 0.7 (+10.0) | 65.5 (+10.0) |" in out
  assert "### target-xnli (accuracy) per language" in out
  rep = work / "report"
  html = (rep / "report.html").read_text()
  assert html.count("data:image/png;base64,") == 2
  for png in ("score_vs_epochs.png", "delta_heatmap.png"):
    assert (rep / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert (rep / "results.csv").read_text().count("\n") == 7


def test_a_sweep_in_a_bucket_status_and_report(tmp_path, capsys, monkeypatch):
  from fake_gcs import fake_gcs

  cfg, pipeline = _tiny_sweep(tmp_path)
  monkeypatch.chdir(tmp_path)
  with fake_gcs(tmp_path / "store", monkeypatch) as store:
    assert sweep.run_sweep(cfg, pipeline, "gs://b/sw", train_fn=FakeTrain()) == {"done": 6}
    assert main(["sweep", "status", "sweep.yaml", "--workdir", "gs://b/sw"]) == 0
    assert "6 done" in capsys.readouterr().out
    assert main(["report", "gs://b/sw"]) == 0
    assert "| none | 55.5 ± 0.7 | 55.5 |" in capsys.readouterr().out
    assert (store / "b/sw/report/report.html").exists() and (store / "b/sw/report/delta_heatmap.png").exists()
  assert not (tmp_path / "gs:").exists()


def test_bad_sweep_files_fail_with_one_line(tmp_path, capsys):
  (tmp_path / "pipeline.yaml").write_text((ROOT / "configs/tiny/pipeline.yaml").read_text())
  (tmp_path / "s.yaml").write_text("name: t\npipeline: pipeline.yaml\nintermediate: [none, intermediate-qqp]\n")
  assert main(["sweep", str(tmp_path / "s.yaml"), "--dry-run"]) != 0
  err = capsys.readouterr().err
  assert "unknown phase 'intermediate-qqp'" in err and err.count("\n") == 1
  (tmp_path / "s.yaml").write_text("name: t\npipeline: pipeline.yaml\ntargets: [target-pawsx]\n")
  assert main(["sweep", str(tmp_path / "s.yaml"), "--dry-run"]) != 0
  assert "'target-pawsx' is not a target" in capsys.readouterr().err


@pytest.mark.slow
def test_tiny_sweep_end_to_end_then_rerun_trains_nothing(tmp_path, tiny_hf, capsys, caplog):
  from xtjax.tiny import write_tiny_xtreme

  model = tiny_hf("xlm-roberta")
  write_tiny_xtreme(tmp_path / "data", n_train=120, n_eval=30)
  text = (ROOT / "configs/tiny/pipeline.yaml").read_text()
  (tmp_path / "pipeline.yaml").write_text(text.replace("runs/demo/hf-tiny-xlmr", str(model))
                                          .replace("runs/demo", str(tmp_path)))
  sweep_text = (ROOT / "configs/experiments/tiny.yaml").read_text().replace("../tiny/pipeline.yaml", "pipeline.yaml")
  (tmp_path / "tiny.yaml").write_text(sweep_text)
  work = tmp_path / "sw"
  args = ["sweep", str(tmp_path / "tiny.yaml"), "--workdir", str(work), f"defaults.cache_dir={tmp_path / 'cache'}"]
  assert main(args) == 0
  summaries = sorted(work.glob("runs/*/summary.json"))
  assert len(summaries) == 8
  mtimes = [p.stat().st_mtime_ns for p in summaries]
  caplog.clear()
  with caplog.at_level("INFO"):
    assert main(args) == 0
  assert [p.stat().st_mtime_ns for p in summaries] == mtimes  # nothing was trained again
  # Each target run's best checkpoint was measured on the inference path.
  latencies = sorted(work.glob("runs/target-*/latency.json"))
  assert len(latencies) == 6
  for p in latencies:
    lat = json.loads(p.read_text())
    assert lat["batch1_p50_ms"] > 0 and lat["batch1_p99_ms"] >= lat["batch1_p50_ms"] and lat["examples_per_s"] > 0
  assert main(["report", str(work)]) == 0
  out = capsys.readouterr().out
  assert "| none |" in out and "intermediate-mnli epochs=3" in out
  assert "### Accuracy, latency and cost per cell" in out
  for png in ("score_vs_epochs.png", "score_vs_throughput.png", "delta_heatmap.png", "learning_curves.png"):
    assert (work / "report" / png).read_bytes()[:4] == b"\x89PNG"
  # Every phase's cost: the encoder's parameters as PyTorch counts them, FLOPs of trained phases only.
  import transformers

  from xtjax.experiments.sweep_report import load_results

  n_torch = sum(p.numel() for p in transformers.AutoModel.from_pretrained(model).parameters())
  for rec in load_results(work):
    assert rec["params"] == n_torch and rec["family"] == "xlm-roberta"
    for (kind, _), cost in zip(rec["run_dirs"], rec["phase_costs"]):
      trained = kind == "intermediate" or rec["target"] == "target-xnli"
      assert (cost["train_flops"] > 0) == trained and (cost["device_hours"] > 0 or not trained)
