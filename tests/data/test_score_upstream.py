"""`xtjax score` with upstream reference files (SQuAD JSON, CoNLL-U, PAN-X TSV, XCOPA jsonl,
XNLI / PAWS-X TSV, Tatoeba), next to the submission layout."""

import json
import os
from pathlib import Path

import pytest

from xtjax.cli.data_cmds import score_submission
from xtjax.tasks.submission import upstream_reference
from xtjax.errors import DataError

SHARED_DATA = Path(os.environ.get("XTJAX_SHARED_DATA")
                   or Path(__file__).resolve().parents[2].parent / "shared" / "data")


def _write(path: Path, text: str) -> Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(text, encoding="utf-8")
  return path


CONLLU = "1\tDer\t_\tDET\t_\t_\t_\t_\t_\t_\n2\tHund\t_\tNOUN\t_\t_\t_\t_\t_\t_\n\n1\tJa\t_\tINTJ\t_\t_\t_\t_\t_\t_\n\n"


def test_tagging_and_choice_tasks_score_against_upstream_files(tmp_path):
  ref, pred = tmp_path / "ref", tmp_path / "pred"
  _write(ref / "udpos" / "de" / "test.conllu", CONLLU)
  _write(pred / "udpos" / "test-de.tsv", "DET\nNOUN\n\nNOUN\n\n")  # one tag wrong of three
  _write(ref / "panx" / "test-de.tsv", "de:Angela\tB-PER\nde:Merkel\tI-PER\n\nde:Ja\tO\n\n")
  _write(pred / "panx" / "test-de.tsv", "B-PER\nI-PER\n\nO\n\n")
  copa = [{"premise": "P", "choice1": "a", "choice2": "b", "question": "cause", "label": 1, "idx": i} for i in range(4)]
  _write(ref / "xcopa" / "test.et.jsonl", "".join(json.dumps(r) + "\n" for r in copa))
  _write(pred / "xcopa" / "test-et.tsv", "1\n1\n0\n1\n")
  out = score_submission(["udpos", "panx", "xcopa"], pred, ref, "xtreme-r")["tasks"]
  assert out["udpos"]["languages"]["de"]["f1"] == pytest.approx(200 / 3)
  assert out["panx"]["languages"]["de"]["f1"] == 100.0
  assert out["xcopa"]["languages"]["et"] == {"accuracy": 75.0}
  assert "de" not in out["udpos"]["missing_languages"]


def test_qa_and_tatoeba_upstream_names(tmp_path):
  ref, pred = tmp_path / "ref", tmp_path / "pred"
  squad = {"data": [{"title": "t", "paragraphs": [{"context": "Der Hund bellt.", "qas": [
      {"id": "q1", "question": "Wer?", "answers": [{"text": "Hund", "answer_start": 4}]}]}]}]}
  _write(ref / "xquad" / "xquad.de.json", json.dumps(squad))
  _write(pred / "xquad" / "test-de.json", json.dumps({"q1": "Hund"}))
  _write(ref / "tatoeba" / "tatoeba.deu-eng.deu", "Hallo.\nDanke.\n")
  _write(ref / "tatoeba" / "tatoeba.deu-eng.eng", "Hello.\nThanks.\n")
  _write(pred / "tatoeba" / "test-de.tsv", "0\n0\n")
  out = score_submission(["xquad", "tatoeba"], pred, ref, "xtreme")["tasks"]
  assert out["xquad"]["languages"]["de"]["f1"] == 100.0
  assert out["tatoeba"]["languages"]["de"] == {"accuracy": 50.0}


def test_submission_layout_still_wins_for_tag_only_files_and_errors_are_one_line(tmp_path):
  ref, pred = tmp_path / "ref", tmp_path / "pred"
  _write(ref / "panx" / "test-de.tsv", "B-PER\nO\n\n")  # submission layout: tags only
  assert upstream_reference("panx", ref / "panx", "de") is None
  _write(ref / "udpos" / "de" / "test.conllu", CONLLU)
  _write(pred / "udpos" / "test-de.tsv", "DET\n\n")
  with pytest.raises(DataError, match=r"test-de\.tsv: 1 predictions but .*test\.conllu has 2 examples"):
    score_submission(["udpos"], pred, ref, "xtreme")


XQUAD_DE = SHARED_DATA / "xquad" / "xquad.de.json"


@pytest.mark.skipif(not XQUAD_DE.is_file(), reason="shared XQuAD absent")
def test_real_xquad_gold_answers_score_100(tmp_path):
  squad = json.loads(XQUAD_DE.read_text(encoding="utf-8"))
  gold = {qa["id"]: qa["answers"][0]["text"] for a in squad["data"] for p in a["paragraphs"] for qa in p["qas"]}
  _write(tmp_path / "pred" / "xquad" / "test-de.json", json.dumps(gold))
  (tmp_path / "ref").mkdir()
  (tmp_path / "ref" / "xquad.de.json").symlink_to(XQUAD_DE)  # the upstream file, as released
  out = score_submission(["xquad"], tmp_path / "pred", tmp_path / "ref", "xtreme")["tasks"]["xquad"]
  assert len(gold) == 1190 and out["languages"] == {"de": {"exact_match": 100.0, "f1": 100.0}}
