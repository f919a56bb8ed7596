"""One card per task: every fact about a task is on its registration, so that adding an XTREME-R task
is one registration (plus its config), and scoring / download / listing never branch on task names."""

import ast
import json
from pathlib import Path

import pytest

from tasks_support import write
from xtjax import config as config_lib
from xtjax.cli.data_cmds import score_submission
from xtjax.data.sources import DataSource
from xtjax.evaluation.zero_shot import eval_languages
from xtjax.runs.schema import TrainConfig
from xtjax.tasks import registry
from xtjax.tasks import t2t_forms as forms
from xtjax.tasks.card import BenchmarkEntry, TaskCard
from xtjax.tasks.catalog import task_rows
from xtjax.tasks.classification import NLI_LABELS, PairClassificationTask, nli_row, read_nli_file
from xtjax.tasks.counts import published_counts
from xtjax.tasks.download_plan import benchmark_task_names, plan
from xtjax.tasks.source_check import source_problem
from xtjax.tasks.source_table import DEV, SourceRow
from xtjax.tasks.submission_formats import LABELS, Submission
from xtjax.tasks.xtreme import benchmark_groups, benchmark_languages, benchmark_tasks

TASKS = Path(__file__).parents[2] / "xtjax" / "tasks"
MODELS = Path(__file__).parents[2] / "configs" / "models"
# Modules that read facts about tasks: they must take them from the cards, never name a task.
CARD_READERS = ("submission.py", "submission_formats.py", "download_plan.py", "xtreme.py", "catalog.py",
                "counts.py", "source_table.py", "card.py", "registry.py")

NEW_LANGS = ("aym", "gn", "quy")


@pytest.fixture
def new_task(monkeypatch):
  """An XTREME-R NLI target added the way a contributor would: one registration with its card."""
  for table in ("_TASKS", "_CARDS", "_RANK"):
    monkeypatch.setattr(registry, table, dict(getattr(registry, table)))
  registry.names()  # every shipped task registered in the copies
  row = SourceRow("americas_nli", NEW_LANGS, "example/americas_nli", "{lang}", splits={"validation": "*", "test": "*"},
                  split_names=DEV, url="https://example.org/americas_nli", license="CC BY-SA 4.0")
  registry.register(
      PairClassificationTask("americas_nli", NLI_LABELS, read_nli_file, nli_row, row.hub_defaults()),
      TaskCard("americas_nli", row, benchmarks={"xtreme-r": BenchmarkEntry(NEW_LANGS, ("mnli",), "classification")},
               score_metrics=("accuracy",), submission=Submission(LABELS), text_to_text=forms.NLI))
  return "americas_nli"


def test_a_new_xtreme_r_task_is_one_registration(new_task, tmp_path, capsys):
  # The benchmark, its groups and languages.
  spec = benchmark_tasks("xtreme-r")[new_task]
  assert spec.languages == NEW_LANGS and spec.train == ("mnli",)
  # In its score group, after the tasks of its module (TASK_MODULES order, then registration order).
  assert list(benchmark_tasks("xtreme-r"))[:3] == ["xnli", new_task, "xcopa"]
  assert benchmark_groups("xtreme-r")["classification"] == ("xnli", new_task, "xcopa")
  assert set(NEW_LANGS) <= set(benchmark_languages("xtreme-r"))
  assert new_task not in benchmark_tasks("xtreme")
  # `xtjax data download`: its hub splits per language, after the English data it trains on.
  names = benchmark_task_names("xtreme-r")
  assert names.index("mnli") < names.index(new_task)
  items = plan("xtreme-r", [new_task], ["gn"])
  assert [(i.split, i.hf_config, i.target) for i in items] == [
      ("validation", "gn", "americas_nli/validation.gn.jsonl"), ("test", "gn", "americas_nli/test.gn.jsonl")]
  # Source checks of a config, and the zero-shot languages a config without `eval_languages` gets.
  hf = DataSource(kind="hf")
  assert source_problem(new_task, hf, "test", "quy") is None
  assert "no split 'train'" in source_problem(new_task, hf, "train", "en")
  cfg_path = write(tmp_path, "americas_nli.yaml",
                   f"name: xlmr-large-americas-nli\nbase: {MODELS / 'xlmr_large.yaml'}\n"
                   f"tasks:\n  - name: {new_task}\n    data: {{kind: hf}}\nbenchmark: xtreme-r\n")
  cfg = config_lib.load(cfg_path, TrainConfig)
  assert eval_languages(cfg, cfg.tasks[0]) == NEW_LANGS
  # `xtjax tasks`.
  row = {r["task"]: r for r in task_rows()}[new_task]
  assert row["languages"] == {"xtreme-r": list(NEW_LANGS)} and row["hf"]["id"] == "example/americas_nli"
  # `xtjax score`: its format and task metric come from the card.
  for lang in NEW_LANGS:
    write(tmp_path / "pred" / new_task, f"test-{lang}.tsv", "neutral\nentailment\n")
    write(tmp_path / "ref" / new_task, f"test-{lang}.tsv", "neutral\nneutral\n")
  out = score_submission(["all"], tmp_path / "pred", tmp_path / "ref")
  assert out["benchmark"] == "xtreme-r"  # in XTREME-R only
  assert out["tasks"][new_task]["avg_metric"] == 50.0 and not out["tasks"][new_task]["missing_languages"]
  # Its text-to-text form.
  assert forms.form(new_task) is forms.NLI


def test_no_card_reader_names_a_task():
  """The modules that read task facts hold no task name: no `task == "mlqa"` branch, no table keyed by
  task names (the tables moved onto the cards)."""
  tasks = set(registry.names())
  found = []
  for name in CARD_READERS:
    tree = ast.parse((TASKS / name).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
      if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in tasks:
        found.append(f"{name}:{node.lineno}: {node.value!r}")
  assert not found, found


def test_every_card_is_consistent():
  rows = registry.source_rows()
  for card in registry.cards():
    for row in (card.source, *card.parts):
      if row is not None:
        assert all(c in rows for c in row.components), card.name
    for bench, entry in card.benchmarks.items():  # English training data: tasks with a source row
      assert all(t in rows for t in entry.train), (card.name, bench)
  # published_counts.tsv's rows point at registered tasks with a source.
  assert {task for task, _, _ in published_counts()} <= {c.name for c in registry.cards() if c.source}


def test_a_card_must_match_its_task_and_a_benchmark_task_must_be_scorable(monkeypatch):
  for table in ("_TASKS", "_CARDS", "_RANK"):
    monkeypatch.setattr(registry, table, dict(getattr(registry, table)))
  task = PairClassificationTask("nli_copy", NLI_LABELS, read_nli_file, nli_row)
  with pytest.raises(ValueError, match="registered with the card of 'xnli'"):
    registry.register(task, registry.card("xnli"))
  with pytest.raises(ValueError, match="needs a submission format and score metrics"):
    TaskCard("nli_copy", benchmarks={"xtreme-r": BenchmarkEntry(("de",), (), "classification")})
  with pytest.raises(ValueError, match="its source row is for 'xnli'"):
    TaskCard("nli_copy", registry.card("xnli").source)


def test_tasks_json_shows_the_cards(capsys):
  from xtjax.cli.main import main

  assert main(["tasks", "--json"]) == 0
  rows = {r["task"]: r for r in json.loads(capsys.readouterr().out)}
  assert set(rows) == set(registry.names())
  assert rows["xcopa"]["languages"] == {"xtreme-r": list(registry.card("xcopa").benchmarks["xtreme-r"].languages)}
