"""Extractive QA tasks: answer round trips through featurisation and post-processing, long contexts,
SQuAD 2.0 null answers, upstream-format fixtures per task, hub rows and official scores."""

import dataclasses
import functools
import json

import numpy as np
import pytest

from fixtures import make_unigram_tokenizer, make_wordpiece_tokenizer
from xtjax.data.formats import QAExample
from xtjax.data import sources
from xtjax.data.sources import DataSource
from xtjax.errors import ConfigError, DataError
from xtjax.tasks import qa, registry
from xtjax.tasks.base import FeatureSettings
from xtjax.tasks.qa_features import context_offsets, truncate_questions
from xtjax.tasks.qa_postprocess import SpanPredictions

# Small windows so that most paragraphs need several; long answers must still come back whole.
SETTINGS = FeatureSettings(max_length=64, doc_stride=16, max_query_length=16, max_answer_length=64)

# Paragraphs in the tiny tokenizers' scripts; characters they do not know stay in words of their own
# (a Unigram <unk> swallows a whole run of unknown characters, which no offset can split).
PARAGRAPHS = {
    "en": ("The Denver Broncos defeated the Carolina Panthers 24–10 to earn their third Super Bowl title. "
           "Tesla moved to  Paris, France, in 1882 when he was 26 years old.",
           ["The Denver Broncos", "Carolina Panthers", "24–10", "third", "Paris", "France", "1882", "26"]),
    "de": ("Der schnelle braune Fuchs springt über den faulen Hund.", ["braune Fuchs", "über", "Hund"]),
    "es": ("El rápido zorro marrón salta sobre el perro perezoso.", ["zorro marrón", "perro perezoso"]),
    "zh": ("敏捷的棕色狐狸跳过了懒狗。懒狗跳过了敏捷的狐狸。", ["棕色狐狸", "懒狗", "敏捷的", "跳过了"]),
    "th": ("สุนัขจิ้งจอก สีน้ำตาล กระโดดข้าม สุนัขขี้เกียจ ลูกบอล สี แดง ดี มาก",
           ["สุนัขจิ้งจอก", "สีน้ำตาล", "สุนัขขี้เกียจ", "สี", "แดง", "ดี"]),
    "ar": ("الثعلب البني السريع يقفز فوق الكلب الكسول.", ["الثعلب البني", "السريع", "الكلب الكسول"]),
    "ru": ("Быстрая коричневая лиса прыгает через ленивую собаку.", ["коричневая лиса", "ленивую собаку"]),
    "hi": ("भारत की राजधानी नई दिल्ली है। यहाँ 2 करोड़ लोग रहते हैं।", ["नई दिल्ली", "भारत", "2 करोड़"]),
}
TOKENIZERS = {"unigram": make_unigram_tokenizer, "wordpiece": make_wordpiece_tokenizer}


@functools.lru_cache(maxsize=None)
def tokenizer(kind: str):
  return TOKENIZERS[kind]()


def multilingual_examples() -> list[QAExample]:
  return [QAExample(f"{lang}-{k}", "What is it?", context, ((answer, context.index(answer)),), False)
          for lang, (context, answers) in PARAGRAPHS.items() for k, answer in enumerate(answers)]


def perfect_logits(features, high: float = 10.0):
  """Span-head outputs that put `high` exactly on every window's labelled start and end tokens."""
  start = np.zeros(features.arrays["input_ids"].shape, np.float32)
  end = np.zeros_like(start)
  rows = np.arange(len(features))
  start[rows, features.arrays["start_positions"]] = high
  end[rows, features.arrays["end_positions"]] = high
  return start, end


def squad_json(paragraphs, version="1.1"):
  """An upstream SQuAD-format document from [(context, [(qid, question, [answer texts] | None)])];
  None marks a SQuAD 2.0 unanswerable question."""
  def qa_entry(qid, question, answers, context):
    entry = {"id": qid, "question": question,
             "answers": [{"text": a, "answer_start": context.index(a)} for a in answers or []]}
    if version == "v2.0":
      entry["is_impossible"] = answers is None
    return entry
  return {"version": version, "data": [{"title": "T", "paragraphs": [
      {"context": context, "qas": [qa_entry(*q, context) for q in qas]} for context, qas in paragraphs]}]}


def write_json(path, obj):
  path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
  return path


# ---- featurisation and round trips --------------------------------------------------------------


def test_tasks_are_registered_with_the_span_head():
  for name in ("squad_v1", "squad_v2", "xquad", "mlqa", "tydiqa"):
    task = registry.get(name)
    assert task.name == name and task.head_type == "span" and task.main_metric == "f1"
  assert registry.get("squad_v2").with_negative and not registry.get("squad_v1").with_negative


@pytest.mark.parametrize("kind", sorted(TOKENIZERS))
def test_multilingual_gold_spans_round_trip(kind):
  task, examples = registry.get("xquad"), multilingual_examples()
  features = task.featurize(examples, tokenizer(kind), SETTINGS)
  stats = task.stats(examples, features)
  assert stats["examples"] == len(examples) == stats["answers"]
  assert stats["features"] == len(features) > len(examples)  # several paragraphs need more than one window
  assert stats["recoverable_rate"] >= 0.99, stats
  assert task.answer_recoverability(examples, features) == stats
  assert features.arrays["input_ids"].dtype == np.int32 and features.arrays["input_ids"].shape[1] == 64
  assert features.extra["offsets"].shape == features.arrays["input_ids"].shape + (2,)
  predictions = task.predict(perfect_logits(features), features, examples, SETTINGS)
  assert predictions.answers == {ex.guid: ex.answers[0][0] for ex in examples}
  assert task.score(predictions, examples, "en") == {"exact_match": 100.0, "f1": 100.0}


def test_offsets_drop_sentencepiece_spaces_and_keep_stripped_marks():
  context = "ab  cd สี x"
  # "▁cd" mapped onto the space before it; a lone "▁"; "ส" whose vowel sign ี (Mn) the normaliser deleted.
  raw = np.array([[[0, 0], [0, 2], [2, 6], [6, 7], [7, 8], [9, 11], [0, 0]]])
  is_context = np.array([[False, True, True, True, True, True, False]])
  got = context_offsets(context, raw, is_context)[0].tolist()
  assert got == [[-1, -1], [0, 2], [4, 6], [-1, -1], [7, 9], [10, 11], [-1, -1]]
  assert context[7:9] == "สี"


def test_wordpiece_accent_stripping_keeps_thai_vowel_signs_in_the_answer():
  task = registry.get("xquad")
  context = "ลูกบอล สี แดง ดี"
  examples = [QAExample("q", "?", context, (("สี", 7),), False)]
  features = task.featurize(examples, tokenizer("wordpiece"), SETTINGS)
  i, s, e = 0, features.arrays["start_positions"][0], features.arrays["end_positions"][0]
  assert context[features.extra["offsets"][i, s, 0]:features.extra["offsets"][i, e, 1]] == "สี"


@pytest.mark.parametrize("kind", sorted(TOKENIZERS))
def test_long_context_labels_the_window_holding_the_answer(kind):
  task = registry.get("squad_v1")
  filler = " ".join(f"The dog number {i} jumps over the lazy fox." for i in range(12))
  context = f"{filler} The quick brown fox is called Heidi. {filler}"
  answer = "Heidi"
  examples = [QAExample("long", "What is the fox called?", context, ((answer, context.index(answer)),), False)]
  features = task.featurize(examples, tokenizer(kind), SETTINGS)
  offsets, start, end = features.extra["offsets"], features.arrays["start_positions"], features.arrays["end_positions"]
  assert len(features) >= 4 and features.stats["multi_window_examples"] == 1
  a_start, a_end = context.index(answer), context.index(answer) + len(answer)
  labelled = []
  for i in range(len(features)):
    spans = offsets[i][offsets[i, :, 0] >= 0]
    holds = spans[:, 0].min() <= a_start and spans[:, 1].max() >= a_end
    if holds:
      assert context[offsets[i, start[i], 0]:offsets[i, end[i], 1]] == answer
      labelled.append(i)
    else:
      assert start[i] == end[i] == features.extra["cls_index"][i] == 0
  assert labelled and labelled[0] > 0 and labelled[-1] < len(features) - 1
  # Noise everywhere, a strong decoy span in the first window, the answer a little stronger in one
  # later window: post-processing compares spans across all windows.
  rng = np.random.default_rng(0)
  start_logits = rng.uniform(-1, 1, features.arrays["input_ids"].shape).astype(np.float32)
  end_logits = rng.uniform(-1, 1, features.arrays["input_ids"].shape).astype(np.float32)
  first_context = int(np.flatnonzero(offsets[0, :, 0] >= 0)[0])
  start_logits[0, first_context], end_logits[0, first_context + 1] = 4.0, 4.0
  start_logits[:, 0] = end_logits[:, 0] = 9.0  # CLS is never an answer without SQuAD 2.0
  i = labelled[-1]
  start_logits[i, start[i]], end_logits[i, end[i]] = 5.0, 5.0
  predictions = task.predict((start_logits, end_logits), features, examples, SETTINGS)
  assert predictions.answers == {"long": answer}
  assert predictions.nbest["long"][0]["text"] == answer
  assert predictions.nbest["long"][0]["score"] == pytest.approx(10.0)
  assert len(predictions.nbest["long"]) == SETTINGS.n_best


def test_ties_go_to_the_earliest_window_start_and_end():
  task = registry.get("squad_v1")
  context = "敏捷的棕色"  # one WordPiece token per character
  examples = [QAExample("t", "?", context, (("捷", 1),), False)]
  features = task.featurize(examples, tokenizer("wordpiece"), SETTINGS)
  tokens = np.flatnonzero(features.extra["offsets"][0, :, 0] >= 0)
  start, end = np.full((1, 64), -5.0), np.full((1, 64), -5.0)
  start[0, tokens[[1, 2]]] = end[0, tokens[[1, 2]]] = 3.0  # "捷", "捷的" and "的" all score 6
  first = task.predict((start, end), features, examples, SETTINGS)
  again = task.predict({"start_logits": start, "end_logits": end}, features, examples, SETTINGS)
  assert first.answers == again.answers == {"t": "捷"}
  assert [c["text"] for c in first.nbest["t"][:3]] == ["捷", "捷的", "的"]
  one_token = dataclasses.replace(SETTINGS, max_answer_length=1)
  assert [c["text"] for c in task.predict((start, end), features, examples, one_token).nbest["t"][:2]] == ["捷", "的"]


def test_long_questions_are_cut_to_max_query_length():
  tok = tokenizer("wordpiece")
  long_question = "who " * 40 + "won?"
  cut, n = truncate_questions(["  Who won?", long_question], tok, 8)
  assert n == 1 and cut[0] == "Who won?"
  assert len(tok(cut[1], add_special_tokens=False)["input_ids"]) == 8
  examples = [QAExample("q", long_question, "Denver won.", (("Denver", 0),), False)]
  features = registry.get("squad_v1").featurize(examples, tok, FeatureSettings(
      max_length=32, doc_stride=4, max_query_length=8))
  assert features.stats["truncated_questions"] == 1
  assert registry.get("squad_v1").stats(examples, features)["recoverable_rate"] == 1.0


def test_bert_tokenizers_keep_segment_ids():
  import transformers

  tok = transformers.BertTokenizerFast(tokenizer_object=tokenizer("wordpiece").backend_tokenizer, unk_token="[UNK]",
                                       sep_token="[SEP]", cls_token="[CLS]", pad_token="[PAD]", mask_token="[MASK]")
  examples = [QAExample("q", "敏捷", "懒狗", (("懒狗", 0),), False)]
  settings = FeatureSettings(max_length=12, doc_stride=2, max_query_length=4)
  features = registry.get("xquad").featurize(examples, tok, settings)
  # [CLS] 敏 捷 [SEP] 懒 狗 [SEP] [PAD]...
  assert features.arrays["token_type_ids"][0].tolist() == [0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0]
  assert (features.arrays["start_positions"][0], features.arrays["end_positions"][0]) == (4, 5)


def test_settings_that_leave_no_room_for_the_stride_are_a_config_error():
  examples = [QAExample("q", "Who?", "Denver won.", (("Denver", 0),), False)]
  with pytest.raises(ConfigError, match="doc_stride"):
    registry.get("xquad").featurize(examples, tokenizer("unigram"), FeatureSettings(max_length=128, doc_stride=128))


# ---- SQuAD 2.0 ----------------------------------------------------------------------------------


def test_squad_v2_null_answers_and_threshold():
  task = registry.get("squad_v2")
  context = "The Denver Broncos won Super Bowl 50 in Santa Clara."
  examples = [QAExample("has", "Who won?", context, (("Denver Broncos", 4),), False),
              QAExample("none", "Who lost in 1990?", context, (), True)]
  features = task.featurize(examples, tokenizer("unigram"), SETTINGS)
  none_rows = features.example_index == 1
  assert (features.arrays["start_positions"][none_rows] == 0).all()
  assert (features.arrays["end_positions"][none_rows] == 0).all()
  start, end = perfect_logits(features, high=5.0)
  start[:, 0] += 1.0  # CLS: 6 + 5 = 11 > 10 on the unanswerable question, 1 + 0 on the other
  for i in np.flatnonzero(none_rows):  # a weaker span on the unanswerable question
    token = int(np.flatnonzero(features.extra["offsets"][i, :, 0] >= 0)[0])
    start[i, token], end[i, token] = 2.0, 2.0
  predictions = task.predict((start, end), features, examples, SETTINGS)
  assert predictions.answers == {"has": "Denver Broncos", "none": ""}
  assert predictions.null_odds["none"] == pytest.approx(11.0 - 4.0)
  assert predictions.null_odds["has"] == pytest.approx(1.0 - 10.0)
  scores = task.score(predictions, examples, "en")
  assert scores["exact"] == scores["exact_match"] == scores["f1"] == 100.0
  assert scores["HasAns_total"] == scores["NoAns_total"] == 1
  lenient = task.predict((start, end), features, examples, SETTINGS, null_threshold=10.0)
  assert lenient.answers["none"] != "" and lenient.null_threshold == 10.0
  assert task.score(lenient, examples, "en")["exact"] == 50.0


def test_squad_v2_official_numbers_for_a_hand_made_case():
  context = "The Denver Broncos won Super Bowl 50 in Santa Clara."
  examples = [QAExample("a", "Who won?", context, (("Denver Broncos", 4),), False),
              QAExample("b", "Who lost?", context, (), True),
              QAExample("c", "Where?", context, (("Santa Clara", 40),), False)]
  predictions = SpanPredictions(answers={"a": "Denver Broncos", "b": "", "c": "Santa"},
                                null_odds={"a": -5.0, "b": 3.0, "c": -1.0}, nbest={}, null_threshold=0.0,
                                with_negative=True)
  scores = registry.get("squad_v2").score(predictions, examples, "en")
  f1_c = 2 * 1.0 * 0.5 / 1.5  # "santa" against "santa clara"
  assert scores["exact"] == pytest.approx(200 / 3)
  assert scores["f1"] == pytest.approx(100 * (2 + f1_c) / 3)
  assert scores["HasAns_exact"] == 50.0 and scores["HasAns_f1"] == pytest.approx(100 * (1 + f1_c) / 2)
  assert scores["NoAns_exact"] == scores["NoAns_f1"] == 100.0
  # Official threshold search over null_odds: answering a (odds -5) and c (odds -1), abstaining on b.
  assert scores["best_exact"] == pytest.approx(200 / 3) and scores["best_exact_thresh"] == -5.0
  assert scores["best_f1"] == pytest.approx(100 * (2 + f1_c) / 3) and scores["best_f1_thresh"] == -1.0
  plain = registry.get("squad_v2").score(predictions.answers, examples, "en")
  assert plain["exact"] == scores["exact"] and "best_exact" not in plain


# ---- upstream files per task, and scores --------------------------------------------------------

CONTEXTS = {
    "en": ("Super Bowl 50 was played in Santa Clara. The Denver Broncos won it.",
           [("q1", "Where was it played?", ["Santa Clara"]), ("q2", "Who won?", ["Denver Broncos", "Broncos"])]),
    "de": ("Das Spiel fand in Santa Clara statt. Die Denver Broncos gewannen es.",
           [("q1", "Wo?", ["Santa Clara"]), ("q2", "Wer gewann?", ["Denver Broncos"])]),
    "zh": ("比赛在圣克拉拉举行。丹佛野马队赢得了比赛。",
           [("q1", "比赛在哪里举行？", ["圣克拉拉"]), ("q2", "谁赢了？", ["丹佛野马队"])]),
    "sw": ("Mchezo ulichezwa Santa Clara. Denver Broncos walishinda.",
           [("q1", "Ulichezwa wapi?", ["Santa Clara"]), ("q2", "Nani alishinda?", ["Denver Broncos"])]),
}
# (task, language, tokenizer, a wrong answer to q2, EM and F1 hand-computed over q1 (right) and q2)
UPSTREAM_CASES = [
    ("squad_v1", "en", "unigram", "Denver", 50.0, 50.0 + 50.0 * 2 * 0.5 / 1.5),  # best of two golds
    ("xquad", "de", "unigram", "Die Denver Broncos gewannen", 50.0, 50.0 + 50.0 * 2 * 0.5 / 1.5),
    ("mlqa", "zh", "wordpiece", "丹佛", 50.0, 50.0 + 50.0 * 2 * 0.4 / 1.4),  # character tokens: P=1, R=2/5
    ("tydiqa", "sw", "unigram", "Broncos walishinda", 50.0, 50.0 + 50.0 * 0.5),
]


@pytest.mark.parametrize("name,lang,kind,wrong,em,f1", UPSTREAM_CASES, ids=[case[0] for case in UPSTREAM_CASES])
def test_upstream_fixture_reads_featurises_and_scores(tmp_path, name, lang, kind, wrong, em, f1):
  task = registry.get(name)
  context, qas = CONTEXTS[lang]
  write_json(tmp_path / f"dev-{lang}.json", squad_json([(context, qas)]))
  examples = task.read("dev", lang, DataSource(path=str(tmp_path / "dev-{lang}.json")))
  assert [ex.guid for ex in examples] == ["q1", "q2"]
  features = task.featurize(examples, tokenizer(kind), SETTINGS)
  predictions = task.predict(perfect_logits(features), features, examples, SETTINGS)
  assert predictions.answers == {"q1": qas[0][2][0], "q2": qas[1][2][0]}
  assert task.score(predictions, examples, lang) == {"exact_match": 100.0, "f1": 100.0}
  scores = task.score({"q1": qas[0][2][0], "q2": wrong}, examples, lang)
  assert scores == {"exact_match": pytest.approx(em), "f1": pytest.approx(f1)}
  ext, text = task.submission_text(predictions, examples)
  assert ext == "json" and json.loads(text) == predictions.answers


def test_squad_v2_upstream_fixture(tmp_path):
  task = registry.get("squad_v2")
  context, qas = CONTEXTS["en"]
  write_json(tmp_path / "dev-v2.0.json", squad_json([(context, qas + [("q3", "Who lost?", None)])], "v2.0"))
  examples = task.read("dev", "en", DataSource(files={"dev": str(tmp_path / "dev-v2.0.json")}))
  assert [ex.is_impossible for ex in examples] == [False, False, True]
  features = task.featurize(examples, tokenizer("wordpiece"), SETTINGS)
  predictions = task.predict(perfect_logits(features), features, examples, SETTINGS)
  assert predictions.answers == {"q1": "Santa Clara", "q2": "Denver Broncos", "q3": ""}
  scores = task.score(predictions, examples, "en")
  assert scores["exact"] == scores["f1"] == scores["best_f1"] == 100.0
  limited = task.read("dev", "en", DataSource(files={"dev": str(tmp_path / "dev-v2.0.json")}, limit=2))
  assert len(limited) == 2


def test_mlqa_scores_with_the_language_normalisation():
  task = registry.get("mlqa")
  examples = [QAExample("z", "?", "北京大学", (("北京大学", 0),), False)]
  assert task.score({"z": "北京"}, examples, "zh") == {"exact_match": 0.0, "f1": pytest.approx(100 * 2 / 3)}
  assert registry.get("xquad").score({"z": "北京"}, examples, "zh") == {"exact_match": 0.0, "f1": 0.0}
  german = [QAExample("d", "?", "der Hund", (("der Hund", 0),), False)]
  assert task.score({"d": "Hund"}, german, "de")["exact_match"] == 100.0  # German article dropped
  assert registry.get("xquad").score({"d": "Hund"}, german, "de")["exact_match"] == 0.0


# ---- hub and TFDS rows --------------------------------------------------------------------------


def _row(qid, context, answers, title="T"):
  return {"id": qid, "title": title, "context": context, "question": "Who?",
          "answers": {"text": answers, "answer_start": [context.index(a) for a in answers]}}


def test_hub_rows_through_the_json_builder(tmp_path):
  context = "The Denver Broncos won."
  rows = [_row("a", context, ["Denver Broncos", "Broncos"]), _row("b", context, [])]
  (tmp_path / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
  source = DataSource(kind="hf", hf_id="json", path=str(tmp_path / "{split}.jsonl"))
  v2 = registry.get("squad_v2").read("dev", "en", source)  # dev -> validation by the task's default
  assert v2 == [QAExample("a", "Who?", context, (("Denver Broncos", 4), ("Broncos", 11)), False),
                QAExample("b", "Who?", context, (), True)]
  v1 = registry.get("xquad").read("test", "en", source)
  assert v1[1] == QAExample("b", "Who?", context, (), False)  # no answers: unlabelled, not unanswerable


def test_tydiqa_hub_rows_keep_the_requested_language(monkeypatch):
  rows = [_row("english-1-1", "Nairobi is big.", ["Nairobi"]), _row("swahili-2-1", "Nairobi ni kubwa.", ["Nairobi"]),
          _row("swahili-3-1", "Dar es Salaam.", ["Dar"])]
  seen = {}

  def fake_hf_rows(source, split, lang, task):
    seen.update(id=source.hf_id, config=source.hf_config, split=source.split_name(split))
    return iter(rows)

  monkeypatch.setattr(sources, "hf_rows", fake_hf_rows)
  examples = registry.get("tydiqa").read("test", "sw", DataSource(kind="hf"))
  assert [ex.guid for ex in examples] == ["swahili-2-1", "swahili-3-1"]
  assert seen == {"id": "google-research-datasets/tydiqa", "config": "secondary_task", "split": "validation"}
  train = registry.get("tydiqa").read("train", "en", DataSource(kind="hf"))  # XTREME: English GoldP train only
  assert [ex.guid for ex in train] == ["english-1-1"] and seen["split"] == "train"


def test_tfds_squad_rows(monkeypatch):
  context = "The Denver Broncos won."
  seen = {}

  def fake_tfds_rows(source, split, lang, task):
    seen.update(name=source.tfds_name, split=source.split_name(split))
    return iter([_row("a", context, ["Broncos"]), {**_row("b", context, []), "is_impossible": True}])

  monkeypatch.setattr(sources, "tfds_rows", fake_tfds_rows)
  examples = registry.get("squad_v1").read("dev", "en", DataSource(kind="tfds"))
  assert examples == [QAExample("a", "Who?", context, (("Broncos", 11),), False),
                      QAExample("b", "Who?", context, (), True)]
  assert seen == {"name": "squad/v1.1", "split": "validation"}


def test_bad_hub_rows_are_data_errors_naming_the_row():
  row = _row("x", "The Denver Broncos won.", ["Broncos"])
  row["answers"]["answer_start"] = [3]
  with pytest.raises(DataError, match=r"row 0 \(id x\).*'Broncos'"):
    qa.rows_to_examples([row], "dataset 'squad'", with_negative=False)
  with pytest.raises(DataError, match="duplicate question id"):
    qa.rows_to_examples([_row("y", "a b", ["a"])] * 2, "dataset 'squad'", with_negative=False)
  with pytest.raises(DataError, match="not a SQuAD-style row"):
    qa.rows_to_examples([{"id": "z"}], "dataset 'squad'", with_negative=False)


def test_tfds_mock_data_squad():
  tfds = pytest.importorskip("tensorflow_datasets")
  tf = pytest.importorskip("tensorflow")
  from xtjax.data.sources import DataSource
  from xtjax.tasks import registry

  context = "The fox jumped over the dog in Paris."

  def as_dataset(self, split, *args, **kwargs):
    assert self.name == "squad"
    return tf.data.Dataset.from_tensor_slices({
        "id": [b"q1", b"q2"], "title": [b"t", b"t"], "context": [context.encode()] * 2,
        "question": [b"Who jumped?", b"Where?"],
        "answers": {"text": tf.ragged.constant([[b"The fox"], [b"Paris"]]).to_tensor(b""),
                    "answer_start": tf.ragged.constant([[0], [31]]).to_tensor(-1)}})

  with tfds.testing.mock_data(as_dataset_fn=as_dataset):
    examples = registry.get("squad_v1").read("dev", "en", DataSource(kind="tfds"))
  assert [(e.guid, e.question, e.answers[0]) for e in examples] == [
      ("q1", "Who jumped?", ("The fox", 0)), ("q2", "Where?", ("Paris", 31))]
