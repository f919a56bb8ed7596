"""MLQA per-language normalisation and EM/F1, hand-computed from mlqa_evaluation_v1.py's rules."""

import pytest

from xtjax.errors import ConfigError, DataError
from xtjax.metrics import squad
from xtjax.metrics.mlqa import exact_match, f1, mixed_segmentation, mlqa, normalize_answer


def test_zh_splits_each_cjk_character():
  assert normalize_answer("2008年北京奥运会！", "zh") == "2008 年 北 京 奥 运 会"
  assert normalize_answer("iPhone 手机", "zh") == "iphone 手 机"
  assert mixed_segmentation("ab,c 中d") == ["ab", ",", "c", "中", "d"]
  # pred 北/京/大/学 vs gold 北/京: P = 1/2, R = 1 -> F1 = 2/3.
  assert f1("北京大学", "北京", "zh") == pytest.approx(2 / 3, abs=1e-15)
  assert not exact_match("北京大学", "北京", "zh")
  assert exact_match("北京。", "北京", "zh")


def test_ar_removes_every_al_sequence():
  assert normalize_answer("الكتاب", "ar") == "كتاب"
  # Upstream's regex also strips 'ال' inside words: م|ال|ك -> "م ك".
  assert normalize_answer("مالك", "ar") == "م ك"
  assert exact_match("كتاب", "الكتاب", "ar")
  # pred [مدرسة, جديدة, في, قاهرة] vs gold [مدرسة]: P = 1/4, R = 1 -> F1 = 0.4.
  assert f1("المدرسة الجديدة في القاهرة", "مدرسة", "ar") == pytest.approx(0.4, abs=1e-15)


def test_hi_drops_danda_and_keeps_words():
  assert normalize_answer("भारत की राजधानी।", "hi") == "भारत की राजधानी"
  assert exact_match("नई दिल्ली", "नई दिल्ली।", "hi")
  assert f1("दिल्ली", "नई दिल्ली", "hi") == pytest.approx(2 / 3, abs=1e-15)


def test_de_articles():
  assert exact_match("Der Hund", "ein Hund", "de")
  assert normalize_answer("Demokratie dem Volk", "de") == "demokratie volk"
  # pred [katze, nachbarn] vs gold [katze]: P = 1/2, R = 1.
  assert f1("die Katze des Nachbarn", "Katze", "de") == pytest.approx(2 / 3, abs=1e-15)


def test_es_articles():
  assert exact_match("La Casa", "casa", "es")
  # pred [perro, y, gatos] vs gold [perro]: P = 1/3, R = 1 -> F1 = 0.5.
  assert f1("el perro y los gatos", "perro", "es") == pytest.approx(0.5, abs=1e-15)


def test_vi_function_words():
  assert normalize_answer("chiếc xe của tôi", "vi") == "xe tôi"
  # pred [xe, tôi] vs gold [xe]: P = 1/2, R = 1.
  assert f1("xe của tôi", "chiếc xe", "vi") == pytest.approx(2 / 3, abs=1e-15)


def test_en_uses_unicode_punctuation_unlike_squad():
  assert exact_match("«The Eiffel Tower»", "eiffel tower", "en")
  assert not squad.exact_match("«The Eiffel Tower»", "eiffel tower")


def test_mlqa_aggregate_counts_missing_predictions():
  refs = {"a": ["北京"], "b": ["上海市", "上海"], "c": ["广州"]}
  preds = {"a": "北京大学", "b": "上海"}
  out = mlqa(preds, refs, "zh")
  # a: EM 0, F1 2/3; b: EM 1, F1 1; c: missing.
  assert out["exact_match"] == 100.0 / 3
  assert out["f1"] == pytest.approx(100.0 * (2 / 3 + 1) / 3, abs=1e-12)


def test_unknown_language_and_bad_references():
  with pytest.raises(ConfigError, match="unknown language 'fr'"):
    mlqa({"a": "x"}, {"a": ["x"]}, "fr")
  with pytest.raises(DataError):
    mlqa({"a": "x"}, {"a": "x"}, "en")
