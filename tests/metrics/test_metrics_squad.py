"""SQuAD v1.1 / v2.0 metrics against hand-computed values of the official formulas."""

import json
from pathlib import Path

import pytest

from xtjax.errors import DataError
from xtjax.metrics import squad

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def test_normalize_answer_drops_case_punctuation_articles_and_spaces():
  assert squad.normalize_answer("The  Quick, brown fox!") == "quick brown fox"
  assert squad.normalize_answer("An apple a day") == "apple day"
  # Articles only as whole words; punctuation is removed first, so "the-end" becomes "theend".
  assert squad.normalize_answer("Theater of the-end") == "theater of theend"
  # Only ASCII punctuation: guillemets and the Chinese full stop survive.
  assert squad.normalize_answer("«Paris»。") == "«paris»。"


def test_f1_partial_overlap_by_hand():
  # pred tokens [cat, sat, on, mat], gold [cat, on, mat]: P = 3/4, R = 1, F1 = 6/7.
  assert squad.f1("the cat sat on the mat", "a cat on a mat") == pytest.approx(6 / 7, abs=1e-15)
  # Repeated tokens count with multiplicity: pred [a1, a1] vs gold [a1]: P = 1/2, R = 1.
  assert squad.f1("x x", "x") == pytest.approx(2 / 3, abs=1e-15)
  assert squad.f1("", "") == 0.0  # v1.1 gives no credit to two empty strings
  assert squad.exact_match("", "")


def test_squad_v1_max_over_golds_and_missing_prediction():
  refs = {"q1": ["Denver Broncos", "The Broncos"], "q2": ["blue whale"], "q3": ["1990"]}
  preds = {"q1": "broncos", "q2": "the blue whale.", "unknown": "ignored"}
  out = squad.squad_v1(preds, refs)
  # q1: "The Broncos" normalises to "broncos": EM 1, F1 1. q2: EM 1, F1 1. q3: missing -> 0.
  assert out == {"exact_match": 100.0 * 2 / 3, "f1": 100.0 * 2 / 3}
  # P = 1, R = 1/2: the official arithmetic gives 100 * (2 * 1 * 0.5 / 1.5) / 1.
  assert squad.squad_v1({"q1": "Denver"}, {"q1": ["Denver Broncos"]})["f1"] == 100.0 * (1.0 / 1.5)


def test_squad_v1_rejects_empty_gold_list():
  with pytest.raises(DataError):
    squad.squad_v1({"q": "x"}, {"q": []})


def _v2_case():
  refs = {"q1": ["Paris"], "q2": ["blue whale"], "q3": [], "q4": [""]}
  preds = {"q1": "Paris", "q2": "whale", "q3": "", "q4": "something"}
  na_probs = {"q1": 0.1, "q2": 0.2, "q4": 0.3, "q3": 0.9}
  return preds, refs, na_probs


def test_f1_v2_empty_answers():
  assert squad.f1_v2("", "") == 1.0
  assert squad.f1_v2("something", "") == 0.0
  assert squad.f1_v2("", "Paris") == 0.0
  assert squad.f1_v2("whale", "blue whale") == pytest.approx(2 / 3, abs=1e-15)


def test_squad_v2_by_hand():
  preds, refs, na_probs = _v2_case()
  out = squad.squad_v2(preds, refs, na_probs)
  # Raw exact [1, 0, 1, 0]; raw F1 [1, 2/3, 1, 0]; no na_prob exceeds the default 1.0.
  assert out["exact"] == 50.0 and out["total"] == 4
  assert out["f1"] == pytest.approx(100 * (8 / 3) / 4, abs=1e-12)
  assert out["HasAns_exact"] == 50.0 and out["HasAns_total"] == 2
  assert out["HasAns_f1"] == pytest.approx(100 * (5 / 3) / 2, abs=1e-12)
  assert out["NoAns_exact"] == 50.0 and out["NoAns_f1"] == 50.0 and out["NoAns_total"] == 2
  # Best threshold: start at 2 (every no-answer right), then by na_prob:
  #   q1 (0.1): +1 -> 3; q2 (0.2): exact +0 / F1 +2/3; q4 (0.3): -1 (non-empty); q3: 0.
  assert out["best_exact"] == 75.0 and out["best_exact_thresh"] == 0.1
  assert out["best_f1"] == pytest.approx(100 * (3 + 2 / 3) / 4, abs=1e-12)
  assert out["best_f1_thresh"] == 0.2


def test_squad_v2_na_prob_thresh_turns_answers_into_no_answer():
  preds, refs, na_probs = _v2_case()
  out = squad.squad_v2(preds, refs, na_probs, na_prob_thresh=0.25)
  # q4 (0.3) and q3 (0.9) are switched to "no answer": both correct -> exact [1, 0, 1, 1].
  assert out["exact"] == 75.0
  assert out["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1 + 1) / 4, abs=1e-12)
  assert out["NoAns_exact"] == 100.0


def test_squad_v2_without_na_probs_has_no_best_keys():
  preds, refs, _ = _v2_case()
  out = squad.squad_v2(preds, refs)
  assert "best_exact" not in out and out["exact"] == 50.0


def test_squad_v2_requires_every_prediction():
  with pytest.raises(DataError, match="no prediction"):
    squad.squad_v2({"q1": "x"}, {"q1": ["x"], "q2": []})


def test_squad_v1_gold_first_answer_on_dev_set():
  path = SHARED_DATA / "squad" / "dev-v1.1.json"
  if not path.exists():
    pytest.skip(f"{path} not present")
  data = json.loads(path.read_text())["data"]
  refs = {qa["id"]: [a["text"] for a in qa["answers"]]
          for article in data for para in article["paragraphs"] for qa in para["qas"]}
  assert len(refs) == 10570
  preds = {qid: answers[0] for qid, answers in refs.items()}
  assert squad.squad_v1(preds, refs) == {"exact_match": 100.0, "f1": 100.0}
  # The last gold answer of question 57340d124776f419006617bf is ".": it normalises to nothing,
  # so it matches exactly but earns F1 0 (the official script's behaviour).
  last = squad.squad_v1({q: a[-1] for q, a in refs.items()}, refs)
  assert last == {"exact_match": 100.0, "f1": 100.0 * 10569 / 10570}
  assert squad.squad_v1({}, refs) == {"exact_match": 0.0, "f1": 0.0}
