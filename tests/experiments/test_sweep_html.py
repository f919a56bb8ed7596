"""The sweep report as a person reads it: an HTML page with real tables, a header and inline figures (parsed with
html.parser; rendered by headless Chromium where one is installed); plots that show the axis under study (a
heatmap panel per epochs value, error bars over seeds, curves labelled `epochs=1`); results.csv and settings.csv
with latency, throughput, delta and significance per setting, aggregated over seeds."""

import base64
import csv
import html.parser
import io
import json
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest

from xtjax.cli.main import main
from xtjax.experiments import sweep, sweep_plots, sweep_report, sweep_settings

ROOT = Path(__file__).resolve().parents[2]
SEEDS = (0, 1, 2)


def _fake_train(cfg, run_dir):
  """A summary, a dev curve and (target runs) latency.json with repeats; a target gains +2 after 1 epoch of
  MNLI, +12 after 10 (read from the intermediate run it starts from); seeds add 0, 3, 6."""
  run_dir = Path(run_dir)
  inter = cfg.tasks[0].name == "mnli"
  if inter:
    (run_dir / "epochs.json").write_text(json.dumps(cfg.epochs))
  bonus = {None: 0.0, 1: 2.0, 10: 12.0}[json.loads((Path(cfg.init_from) / "epochs.json").read_text())
                                       if cfg.init_from else None]
  acc = 40.0 + bonus + 3 * cfg.seed
  zs = {} if inter else {"xnli": {"en": {"accuracy": acc + 5}, "de": {"accuracy": acc - 5},
                                  "avg": {"accuracy": acc}}}
  (run_dir / "summary.json").write_text(json.dumps({"status": "finished", "step": 30, "zero_shot": zs,
                                                    "train_seconds": 20.0, "compile_seconds": 8.0}))
  task = "mnli" if inter else "xnli"
  rows = [{"step": s, "kind": f"dev/{task}", "time": 0.0, "accuracy": 30.0 + s + cfg.seed + cfg.epochs}
          for s in (10, 20, 30)]
  (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  if not inter:  # the same architecture in every cell: throughput differs by noise only
    lat = {"batch1_p50_ms": 2.0, "batch1_p99_ms": 3.0, "examples_per_s": 1020.0, "compile_seconds": 1.5,
           "device_kind": "cpu", "eval_batch_size": 32,
           "repeats": {"batch1_p50_ms": [2.0 + 0.1 * i for i in range(5)],
                       "batch1_p99_ms": [3.0 + 0.1 * i for i in range(5)],
                       "examples_per_s": [1000.0 + 10 * i + cfg.seed for i in range(5)]}}
    (run_dir / "latency.json").write_text(json.dumps(lat))
  return {"status": "finished"}


@pytest.fixture
def swept(tmp_path):
  """A finished 3-seed sweep: none vs intermediate MNLI for 1 or 10 epochs -> XNLI (the study's first question)."""
  (tmp_path / "pipeline.yaml").write_text((ROOT / "configs/tiny/pipeline.yaml").read_text())
  (tmp_path / "sweep.yaml").write_text(
      "name: epochs-1-vs-10\npipeline: pipeline.yaml\nintermediate: [none, intermediate-mnli]\n"
      "targets: [target-xnli]\nlatency: false\n"
      f"axes:\n  intermediate.train.epochs: [1, 10]\n  defaults.seed: {list(SEEDS)}\n")
  cfg, pipeline = sweep.load_sweep(tmp_path / "sweep.yaml")
  work = tmp_path / "sw"
  sweep.run_sweep(cfg, pipeline, work, train_fn=_fake_train)
  return work


class _Page(html.parser.HTMLParser):
  """Tables (rows of cell texts), images (src) and the text of a page."""

  def __init__(self):
    super().__init__()
    self.tables, self.imgs, self.text, self.tags = [], [], [], []
    self._cell = None

  def handle_starttag(self, tag, attrs):
    self.tags.append(tag)
    if tag == "table":
      self.tables.append([])
    elif tag == "tr":
      self.tables[-1].append([])
    elif tag in ("td", "th"):
      self._cell = []
    elif tag == "img":
      self.imgs.append(dict(attrs))

  def handle_endtag(self, tag):
    if tag in ("td", "th"):
      self.tables[-1][-1].append("".join(self._cell).strip())
      self._cell = None

  def handle_data(self, data):
    self.text.append(data)
    if self._cell is not None:
      self._cell.append(data)


def test_html_report_has_real_tables_a_header_and_inline_figures(swept, capsys):
  assert main(["report", str(swept)]) == 0
  capsys.readouterr()
  rep = swept / "report"
  page = _Page()
  page.feed((rep / "report.html").read_text())
  text = " ".join(page.text)
  assert "pre" not in page.tags and "sweep sweep" not in text
  # The header: the sweep's name, the code revision it ran at, the devices, the date.
  assert "Sweep epochs-1-vs-10" in text
  for field in ("code revision (sweep)", "trained on", "latency measured on", "report date"):
    assert field in text
  assert "(xtjax " in text or "not a git checkout" in text
  # Real tables: a header row and one row per setting, cells holding numbers, no markdown pipes.
  main_table = page.tables[0]
  assert main_table[0] == ["intermediate", "target-xnli", "avg"]
  rows = {r[0]: r[1:] for r in main_table[1:]}
  assert set(rows) == {"none", "intermediate-mnli epochs=1", "intermediate-mnli epochs=10"}
  assert rows["intermediate-mnli epochs=10"][0].startswith("55.0 ± 3.0 (+12.0")
  assert all("|" not in c for t in page.tables for r in t for c in r)
  settings = next(t for t in page.tables if t[0][0] == "setting")
  assert len(settings) == 4 and "batch-1 p50 ms" in settings[0] and "device-h measured (no compile)" in settings[0]
  # Every figure inline, each a PNG, as many as the report wrote.
  pngs = sorted(p.name for p in rep.glob("*.png"))
  assert sorted(i["alt"] for i in page.imgs) == pngs and len(pngs) >= 4
  for img in page.imgs:
    assert img["src"].startswith("data:image/png;base64,")
    assert base64.b64decode(img["src"].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def _chromium() -> str | None:
  return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome", "chrome")) if p), None)


@pytest.mark.skipif(_chromium() is None, reason="no Chromium / Chrome installed to render the page")
def test_html_report_renders_in_headless_chromium(swept, tmp_path, capsys):
  assert main(["report", str(swept)]) == 0
  shot = tmp_path / "page.png"
  subprocess.run([_chromium(), "--headless", "--disable-gpu", "--no-sandbox", f"--screenshot={shot}",
                  "--window-size=1400,3000", (swept / "report" / "report.html").as_uri()],
                 check=True, capture_output=True, timeout=120)
  import matplotlib.image as mpimg

  img = mpimg.imread(shot)
  assert float((img[..., :3] < 0.95).any(-1).mean()) > 0.05  # tables and figures drawn, not a blank page


def test_plots_show_the_axis_studied(swept):
  from matplotlib.container import ErrorbarContainer

  records = sweep_report.load_results(swept)
  figs = sweep_plots.figures(records)
  # One heatmap panel per value of the epochs axis, titled by it: never an average over epochs.
  panels = [ax for ax in figs["delta_heatmap.png"].axes if ax.images]
  assert sorted(ax.get_title() for ax in panels) == ["epochs=1", "epochs=10"]
  cells = {ax.get_title(): sorted(t.get_text() for t in ax.texts) for ax in panels}
  assert cells["epochs=1"] == ["+2.0", "+2.0"] and cells["epochs=10"] == ["+12.0", "+12.0"]  # de, en
  # Error bars over the 3 seeds (std 3.0) on the epochs plot.
  ax = figs["score_vs_epochs.png"].axes[0]
  bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
  assert bars and bars[0].has_yerr
  seg = bars[0].lines[2][0].get_segments()
  assert [round(float(s[1][1] - s[0][1]), 6) for s in seg] == [6.0, 6.0]  # +- 3.0 at epochs 1 and 10
  # Learning curves labelled by axis values, not run hashes; seeds are one line.
  labels = [t.get_text() for a in figs["learning_curves.png"].axes if a.get_legend()
            for t in a.get_legend().get_texts()]
  assert {"intermediate-mnli epochs=1 (3 seeds)", "intermediate-mnli epochs=10 (3 seeds)", "none (3 seeds)"} <= set(labels)
  assert not any(re.search(r"[0-9a-f]{16}", x) for x in labels)  # no run hashes
  # Throughput: every setting's point labelled; one architecture, so no frontier through noise.
  ax = figs["score_vs_throughput.png"].axes[0]
  assert sorted(t.get_text() for t in ax.texts) == ["intermediate-mnli epochs=1", "intermediate-mnli epochs=10",
                                                    "none"]
  assert not any("Pareto" in (line.get_label() or "") for line in ax.lines)
  assert any(isinstance(c, ErrorbarContainer) and c.has_xerr for c in ax.containers)


def test_results_csv_has_latency_throughput_delta_and_significance_per_setting(swept, capsys):
  assert main(["report", str(swept)]) == 0
  out = capsys.readouterr().out
  per_cell = list(csv.DictReader(io.StringIO((swept / "report" / "results.csv").read_text())))
  per_setting = {r["setting"]: r for r in csv.DictReader(io.StringIO((swept / "report" / "settings.csv").read_text()))}
  assert len(per_cell) == 9 and len(per_setting) == 3
  ten = per_setting["intermediate-mnli epochs=10"]
  assert float(ten["score_mean"]) == pytest.approx(55.0) and float(ten["score_std"]) == pytest.approx(3.0)
  assert float(ten["score_delta"]) == pytest.approx(12.0) and ten["score_mark"] == "**"
  assert per_setting["intermediate-mnli epochs=1"]["score_mark"] == ""  # +2 with std 3 over 3 seeds: noise
  # Latency pooled over 3 seeds x 5 repeats; throughput the same model's: its delta is not significant.
  assert ten["batch1_p50_ms_n"] == "15" and float(ten["batch1_p50_ms_mean"]) == pytest.approx(2.2)
  assert float(ten["batch1_p99_ms_std"]) > 0 and float(ten["examples_per_s_mean"]) == pytest.approx(1021.0)
  assert float(ten["examples_per_s_delta"]) == pytest.approx(0.0) and ten["examples_per_s_mark"] == ""
  # Each cell row carries its setting's aggregates beside its own score.
  assert {r["setting"] for r in per_cell} == set(per_setting)
  assert all(r["score_mean"] == per_setting[r["setting"]]["score_mean"] for r in per_cell)
  assert "| intermediate-mnli epochs=10 | target-xnli | 3 | 55.0 ± 3.0 | +12.0 | ** |" in out


def test_welch_of_constant_samples_warns_nothing():
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    assert sweep_settings.welch_p([33.3] * 3, [33.3] * 3) is None


def test_published_results_sit_beside_measured_settings(swept, capsys):
  from xtjax.experiments import published

  rows = published.published()
  assert all(r["source"].startswith("Hu et al. 2020") for r in rows)
  assert {(r["task"], r["metric"]): r["value"] for r in rows}[("xnli", "accuracy")] == 79.2
  assert main(["report", str(swept)]) == 0
  out = capsys.readouterr().out
  # XNLI accuracy measured: the best setting (10 epochs, 55.0) beside XLM-R large's 79.2.
  assert ("| xnli | accuracy | 79.2 | xlm-roberta-large | Hu et al. 2020 (XTREME), Table 2 | "
          "intermediate-mnli epochs=10 | 55.0 ± 3.0 | -24.2 |") in out
  page = _Page()
  page.feed((swept / "report" / "report.html").read_text())
  assert any(t[0][:3] == ["task", "metric", "published"] and len(t) == 2 for t in page.tables)
