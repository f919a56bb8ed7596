"""XTREME / XTREME-R task definitions and the Phang et al. (2020) intermediate tasks."""

import pytest

from xtjax.tasks import registry
from xtjax.tasks.xtreme import BENCHMARKS, benchmark_languages, benchmark_tasks, intermediate_tasks


def test_xtreme_tasks_and_language_counts():
  tasks = benchmark_tasks("xtreme")
  counts = {name: len(task.languages) for name, task in tasks.items()}
  assert counts == {"xnli": 15, "pawsx": 7, "udpos": 33, "panx": 40, "xquad": 11, "mlqa": 7,
                    "tydiqa": 9, "bucc2018": 4, "tatoeba": 36}
  assert len(benchmark_languages("xtreme")) == 40
  assert "en" not in tasks["tatoeba"].languages and "en" not in tasks["bucc2018"].languages


def test_xtreme_r_tasks_and_language_counts():
  tasks = benchmark_tasks("xtreme-r")
  counts = {name: len(task.languages) for name, task in tasks.items()}
  assert counts == {"xnli": 15, "xcopa": 11, "udpos": 38, "panx": 48, "xquad": 11, "mlqa": 7,
                    "tydiqa": 9, "mewslix": 11, "lareqa": 11, "tatoeba": 41}
  assert "pawsx" not in tasks and "bucc2018" not in tasks
  # XTREME-R's 50 languages, as listed for Mewsli-X's candidate set.
  assert benchmark_languages("xtreme-r") == tuple(sorted(
      "af ar az bg bn de el en es et eu fa fi fr gu he hi ht hu id it ja jv ka kk ko lt ml mr ms "
      "my nl pa pl pt qu ro ru sw ta te th tl tr uk ur vi wo yo zh".split()))
  xtreme = benchmark_tasks("xtreme")
  for name in ("udpos", "panx", "tatoeba"):
    assert set(xtreme[name].languages) < set(tasks[name].languages), name


def test_training_data_mapping():
  for benchmark in BENCHMARKS:
    tasks = benchmark_tasks(benchmark)
    assert tasks["xnli"].train == ("mnli",)
    assert tasks["xquad"].train == tasks["mlqa"].train == ("squad_v1",)
    assert tasks["tydiqa"].train == ("tydiqa",)
    assert tasks["udpos"].train == ("udpos",) and tasks["panx"].train == ("panx",)
  assert benchmark_tasks("xtreme")["pawsx"].train == ("pawsx",)
  assert benchmark_tasks("xtreme")["tatoeba"].train == ()
  assert benchmark_tasks("xtreme")["bucc2018"].train == ()
  assert benchmark_tasks("xtreme-r")["xcopa"].train == ("siqa", "copa")
  assert benchmark_tasks("xtreme-r")["tatoeba"].train == ("squad_v1",)
  assert benchmark_tasks("xtreme-r")["lareqa"].train == ("squad_v1",)


def test_metrics_and_training_tasks():
  for benchmark in BENCHMARKS:
    for task in benchmark_tasks(benchmark).values():
      card = registry.card(task.name)
      assert set(card.score_metrics) <= set(card.submission.format.metrics), task.name
      for name in task.train:  # every English training task is a registered task with a source
        assert registry.card(name).source is not None, name
  assert registry.card("mlqa").score_metrics == ("exact_match", "f1")
  assert registry.card("mewslix").submission.format.metrics == ("map@20",)
  with pytest.raises(ValueError, match="unknown benchmark"):
    benchmark_tasks("glue")


def test_phang_intermediate_tasks():
  assert list(intermediate_tasks()) == ["anli_plus", "mnli", "qqp", "squad_v1", "squad_v2",
                                        "hellaswag", "commonsenseqa", "cosmosqa", "ccg"]
  anli_plus = intermediate_tasks()["anli_plus"]
  assert list(anli_plus.source.components) == ["anli_r1", "anli_r2", "anli_r3", "mnli",
                                               "snli"]
  rows = registry.source_rows()
  for task in intermediate_tasks().values():
    for name in task.source.components or (task.name,):
      assert name in rows, name
