"""`xtjax score`: missing or unknown prediction ids are counted and warned about; `--strict` fails."""

import json
import logging

import pytest

from xtjax.cli import data_cmds
from xtjax.cli.main import main
from xtjax.errors import DataError


def _files(tmp_path):
  refs = {f"q{i}": [f"answer {i}"] for i in range(10)}
  preds = {f"q{i}": f"answer {i}" for i in range(3, 10)} | {"x1": "a", "x2": "b"}  # 3 missing, 2 unknown
  (tmp_path / "p" / "xquad").mkdir(parents=True)
  (tmp_path / "r" / "xquad").mkdir(parents=True)
  (tmp_path / "p" / "xquad" / "test-de.json").write_text(json.dumps(preds))
  (tmp_path / "r" / "xquad" / "test-de.json").write_text(json.dumps(refs))
  return tmp_path / "p", tmp_path / "r"


def test_mismatched_ids_warn_with_counts(tmp_path, caplog):
  pred, ref = _files(tmp_path)
  with caplog.at_level(logging.WARNING):
    out = data_cmds.score_submission(["xquad"], pred, ref)
  xquad = out["tasks"]["xquad"]
  assert xquad["languages"]["de"]["exact_match"] == 70.0  # the 3 missing score 0
  assert xquad["id_mismatches"] == {"de": {"missing_ids": 3, "unknown_ids": 2}}
  [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
  assert record.getMessage() == (f"{pred / 'xquad' / 'test-de.json'}: 3 of 10 ids in {ref / 'xquad' / 'test-de.json'} "
                                 "have no prediction (scored 0), 2 predicted ids are not in it (ignored)")


def test_strict_makes_mismatched_ids_an_error(tmp_path, capsys):
  pred, ref = _files(tmp_path)
  with pytest.raises(DataError, match=r"test-de\.json: 3 of 10 ids in .* have no prediction"):
    data_cmds.score_submission(["xquad"], pred, ref, strict=True)
  assert main(["score", "--task", "xquad", "--predictions", str(pred), "--references", str(ref), "--strict"]) == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith("xtjax score: error: ") and "\n" not in err


def test_matching_ids_are_quiet(tmp_path, caplog):
  pred, ref = _files(tmp_path)
  (pred / "xquad" / "test-de.json").write_text(json.dumps({f"q{i}": f"answer {i}" for i in range(10)}))
  with caplog.at_level(logging.WARNING):
    out = data_cmds.score_submission(["xquad"], pred, ref, strict=True)
  assert out["tasks"]["xquad"]["id_mismatches"] == {} and not caplog.records
