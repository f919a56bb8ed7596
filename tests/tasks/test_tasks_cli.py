"""`xtjax data stats` and `xtjax score` (XTREME submission folders)."""

import argparse
import json

import pytest

from tasks_support import tsv, unigram, write
from xtjax.cli import data_cmds
from xtjax.errors import DataError


def run(argv):
  parser = argparse.ArgumentParser(prog="xtjax")
  sub = parser.add_subparsers(dest="command")
  data_cmds.register(sub)
  args = parser.parse_args(argv)
  return args.func(args)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
  folder = tmp_path_factory.mktemp("tok")
  unigram().save_pretrained(str(folder))
  return folder


def test_data_stats_json(tmp_path, tokenizer_dir, capsys):
  data = write(tmp_path, "dev-de.tsv", tsv(("Der Hund", "Die schnelle", "neutral"), ("Ja", "Nein", "neutral"),
                                           ("Hallo Welt " * 10, "Hallo", "entailment")))
  rc = run(["data", "stats", "--task", "xnli", "--split", "dev", "--language", "de", "--model", str(tokenizer_dir),
            "--data-file", f"dev.de={data}", "--max-length", "32", "--json", "--cache-dir", str(tmp_path / "c")])
  assert rc == 0
  out = json.loads(capsys.readouterr().out)
  lengths = [len(unigram()(a, b)["input_ids"]) for a, b in (("Der Hund", "Die schnelle"), ("Ja", "Nein"),
                                                            ("Hallo Welt " * 10, "Hallo"))]
  assert [n > 32 for n in lengths] == [False, False, True]
  assert out["examples"] == out["features"] == 3 and out["truncated"] == 1
  assert out["truncation_rate"] == pytest.approx(1 / 3)
  assert out["label_distribution"] == {"neutral": 2, "entailment": 1}
  assert list((tmp_path / "c" / "xnli").iterdir())
  run(["data", "stats", "--task", "xnli", "--language", "de", "--model", str(tokenizer_dir), "--data-path", str(data)])
  assert "label_distribution: " in capsys.readouterr().out


def _submission(root, kind):
  """A small submission ('predictions') or label ('references') folder."""
  pred = kind == "predictions"
  write(root, "xnli/test-de.tsv", "entailment\nneutral\ncontradiction\nneutral\n" if pred else
        "entailment\nneutral\ncontradiction\ncontradiction\n")  # de: 3/4
  write(root, "xnli/test-en.tsv", "neutral\nneutral\n")  # en: 2/2 (same file for both)
  write(root, "udpos/test-de.tsv", "DET\nNOUN\n\nVERB\n" if pred else "DET\nNOUN\n\nNOUN\n")
  write(root, "bucc2018/test-de.tsv", "de-1\ten-1\nde-2\ten-9\n" if pred else "de-1\ten-1\nde-2\ten-2\n")
  write(root, "tatoeba/test-de.tsv", "0\n1\n5\n3\n" if pred else "0\n1\n2\n3\n")
  if pred:
    write(root, "mlqa/test-de.json", {"q1": "der Hund", "q2": "Katze"})
    write(root, "xquad/test-de.json", {"q1": "the dog"})
  else:
    write(root, "mlqa/test-de.json", {"data": [{"paragraphs": [{"context": "Der Hund und die Katze", "qas": [
        {"id": "q1", "question": "?", "answers": [{"text": "Hund", "answer_start": 4}]},
        {"id": "q2", "question": "?", "answers": [{"text": "die Katze", "answer_start": 13}]}]}]}]})
    write(root, "xquad/test-de.json", {"q1": ["dog"], "q2": ["cat"]})
  write(root, "mewslix/test-de.json", {"m1": ["Q2", "Q1"], "m2": ["Q5"]} if pred else {"m1": ["Q1"], "m2": ["Q5"]})


def test_score_submission_per_language_and_averages(tmp_path, capsys):
  _submission(tmp_path / "p", "predictions")
  _submission(tmp_path / "r", "references")
  out = data_cmds.score_submission(["all"], tmp_path / "p", tmp_path / "r")
  assert out["benchmark"] == "xtreme-r"  # mewslix is there
  tasks = out["tasks"]
  assert tasks["xnli"]["languages"] == {"de": {"accuracy": 75.0}, "en": {"accuracy": 100.0}}
  assert tasks["xnli"]["avg_accuracy"] == tasks["xnli"]["avg_metric"] == 87.5
  assert "ar" in tasks["xnli"]["missing_languages"] and "de" not in tasks["xnli"]["missing_languages"]
  # udpos: gold spans DET NOUN | NOUN, predicted DET NOUN | VERB -> P = R = F1 = 2/3.
  assert tasks["udpos"]["avg_f1"] == pytest.approx(200 / 3) == tasks["udpos"]["avg_metric"]
  assert tasks["bucc2018"]["languages"]["de"] == {"precision": 50.0, "recall": 50.0, "f1": 50.0}
  assert tasks["tatoeba"]["avg_accuracy"] == 75.0
  # mlqa (German articles dropped): q1 "der Hund" == "Hund" -> EM 1; q2 "Katze" vs "die Katze" -> EM 1.
  assert tasks["mlqa"]["languages"]["de"] == {"exact_match": 100.0, "f1": 100.0}
  # xquad (SQuAD v1.1): q1 right, q2 unanswered -> EM = F1 = 50; task score (EM + F1) / 2.
  assert tasks["xquad"]["avg_metric"] == 50.0
  assert tasks["mewslix"]["languages"]["de"] == {"map@20": 75.0}  # AP 1/2 and 1
  assert out["groups"] == {}  # no task has all its languages
  data_cmds.run_score(argparse.Namespace(task="xnli,tatoeba", predictions=str(tmp_path / "p"),
                                         references=str(tmp_path / "r"), benchmark="xtreme", json=False,
                                         strict=False))
  text = capsys.readouterr().out
  assert "xnli: 87.50 (accuracy 87.50; 2 languages)" in text and "  de: accuracy 75.00" in text


def test_score_groups_when_every_language_is_present(tmp_path):
  from xtjax.tasks.xtreme import benchmark_tasks

  for lang in benchmark_tasks("xtreme")["pawsx"].languages:
    write(tmp_path / "p" / "pawsx", f"test-{lang}.tsv", "1\n0\n")
    write(tmp_path / "r" / "pawsx", f"test-{lang}.tsv", "1\n1\n")
  for lang in benchmark_tasks("xtreme")["xnli"].languages:
    write(tmp_path / "p" / "xnli", f"test-{lang}.tsv", "neutral\n")
    write(tmp_path / "r" / "xnli", f"test-{lang}.tsv", "neutral\n")
  out = data_cmds.score_submission(["pawsx", "xnli"], tmp_path / "p", tmp_path / "r")
  assert out["groups"] == {"classification": 75.0}
  one_task = data_cmds.score_submission(["pawsx"], tmp_path / "p" / "pawsx", tmp_path / "r" / "pawsx")
  assert one_task["tasks"]["pawsx"]["avg_accuracy"] == 50.0


def test_score_errors_name_the_files(tmp_path):
  write(tmp_path / "r" / "xnli", "test-de.tsv", "neutral\nneutral\n")
  with pytest.raises(DataError, match=r"test-de\.tsv: no prediction file"):
    data_cmds.score_submission(["xnli"], tmp_path / "p", tmp_path / "r")
  write(tmp_path / "p" / "xnli", "test-de.tsv", "neutral\n")
  with pytest.raises(DataError, match=r"p/xnli/test-de\.tsv: 1 lines but .*r/xnli/test-de\.tsv has 2"):
    data_cmds.score_submission(["xnli"], tmp_path / "p", tmp_path / "r")
  write(tmp_path / "p" / "mlqa", "test-de.json", "{oops")
  write(tmp_path / "r" / "mlqa", "test-de.json", {"q": ["a"]})
  with pytest.raises(DataError, match=r"mlqa/test-de\.json:1: invalid JSON"):
    data_cmds.score_submission(["mlqa"], tmp_path / "p", tmp_path / "r")
