"""LAReQA (XQuAD-R) and Mewsli-X readers."""

import pytest

from xtjax.data.formats import (RetrievalCandidate, RetrievalQuery, read_lareqa,
                                read_mewslix_entities, read_mewslix_mentions, read_mewslix_pairs,
                                read_xquad_r)


def _xquad_r(context, breaks, qas):
  sentences = [context[b[0]:b[-1]] for b in breaks]
  return {"version": "1.1", "data": [{"title": "T", "paragraphs": [
      {"context": context, "qas": qas, "sentences": sentences, "sentence_breaks": breaks}]}]}


def _qa(qid, question, text, start):
  return {"id": qid, "question": question, "answers": [{"text": text, "answer_start": start}]}


EN = "It rained. The game was won by Denver."
DE = "Es regnete. Denver gewann das Spiel."


@pytest.fixture
def xquad_r(write):
  en = _xquad_r(EN, [[0, 10], [11, 38]], [_qa("q1", "Who won?", "Denver", 31)])
  de = _xquad_r(DE, [[0, 11], [12, 36]], [_qa("q1", "Wer?", "Denver", 12)])
  return {"en": write("xquad-r/en.json", en), "de": write("xquad-r/de.json", de)}


def test_lareqa_pool_links_answers_across_languages(xquad_r):
  result = read_lareqa(xquad_r)
  assert result.examples == [RetrievalQuery("q1_en", "en", "Who won?", ("en_1_1", "de_1_1")),
                             RetrievalQuery("q1_de", "de", "Wer?", ("en_1_1", "de_1_1"))]
  assert result.candidates == [
      RetrievalCandidate("en_1_0", "en", "It rained.", EN),
      RetrievalCandidate("en_1_1", "en", "The game was won by Denver.", EN),
      RetrievalCandidate("de_1_0", "de", "Es regnete.", DE),
      RetrievalCandidate("de_1_1", "de", "Denver gewann das Spiel.", DE),
  ]
  assert result.counts == {"questions": 2, "candidates": 4}
  assert read_xquad_r(xquad_r["en"], "en").examples[0].relevant == ("en_1_1",)


def test_lareqa_answer_outside_sentences_is_counted(write):
  path = write("en.json", _xquad_r(EN, [[0, 10]], [_qa("q1", "Who?", "Denver", 31)]))
  result = read_xquad_r(path, "en")
  assert result.examples == [] and result.skipped == {"answer_outside_sentences": 1}


@pytest.mark.parametrize("breaks, qa, parts", [
    ([[0, 10], [5, 38]], _qa("q", "Who?", "Denver", 31), ["sentence_breaks[1]", "increasing"]),
    ([[0, 10], [11]], _qa("q", "Who?", "Denver", 31), ["sentence_breaks[1]", "[start, end]"]),
    ([[0, 10], [11, 38]], _qa("q", "Who?", "Denver", 30), ["(id q).answers[0].answer_start"]),
    ([[0, 10], [11, 38]], {"id": "q", "question": "?", "answers": []}, ["exactly 1 answer"]),
])
def test_lareqa_malformed(write, expect_error, breaks, qa, parts):
  path = write("bad.json", _xquad_r(EN, breaks, [qa]))
  with expect_error(path, "data[0].paragraphs[0]", *parts):
    read_xquad_r(path, "en")


def test_real_xquad_r(shared_data):
  folder = shared_data("xquad_r", "xquad-r")
  files = {path.stem: path for path in sorted(folder.glob("*.json"))}
  assert len(files) == 11
  result = read_lareqa(files)
  assert result.counts == {"questions": 11 * 1190, "candidates": 13014}
  assert result.skipped == {"answer_outside_sentences": 0}
  assert all(len(q.relevant) == 11 for q in result.examples)
  english = read_xquad_r(files["en"], "en")
  assert english.counts == {"questions": 1190, "candidates": 1180}
  assert english.examples[0] == RetrievalQuery(
      "56beb4343aeaaa14008c925b_en", "en", "How many points did the Panthers defense surrender?",
      ("en_1_0",))


ENTITY = {"entity_id": "Q38768", "title": "Richter magnitude scale",
          "description": "The Richter scale\nmeasures quakes. It is old. Trailing text",
          "description_language": "en", "description_url": "https://en.wikipedia.org/wiki/R",
          "sentence_spans": [{"start": 0, "end": 34}, {"start": 35, "end": 45}]}
TEXT = "Ein Beben. Es hatte 6,8 auf der escala de Richter."
CONTEXT = {"document_title": "Beben", "document_url": "u", "document_id": "d1", "language": "de",
           "text": TEXT, "sentence_spans": [{"start": 0, "end": 10}, {"start": 11, "end": 50}]}
MENTION = {"example_id": "m1", "entity_id": "Q38768",
           "mention_span": {"start": 32, "end": 49, "text": "escala de Richter"}}


def test_mewslix_entities(write, expect_error):
  result = read_mewslix_entities(write("candidate_set_entities.jsonl", [ENTITY]))
  assert result.examples == []
  assert result.candidates == [RetrievalCandidate(
      "Q38768", "en", "The Richter scale measures quakes. It is old.")]
  path = write("dup.jsonl", [ENTITY, ENTITY])
  with expect_error(path, f"{path}:2 [entity_id]", "duplicate"):
    read_mewslix_entities(path)
  path = write("span.jsonl", [ENTITY | {"sentence_spans": [{"start": 5, "end": 99}]}])
  with expect_error(path, f"{path}:1 [sentence_spans[0]]"):
    read_mewslix_entities(path)


def test_mewslix_mentions(write, expect_error):
  path = write("wikinews_mentions-dev.jsonl", [{"context": CONTEXT, "mentions": [MENTION]}])
  result = read_mewslix_mentions(path)
  assert result.examples == [RetrievalQuery(
      "m1", "de", "escala de Richter", ("Q38768",), "Es hatte 6,8 auf der escala de Richter.",
      (21, 38))]
  assert result.counts == {"documents": 1, "mentions": 1}
  no_text = write("no_text.jsonl", [{"context": CONTEXT | {"text": ""}, "mentions": [MENTION]}])
  with expect_error(no_text, f"{no_text}:1 [context.text]", "restore_text"):
    read_mewslix_mentions(no_text)
  crossing = MENTION | {"mention_span": {"start": 4, "end": 14, "text": TEXT[4:14]}}
  path = write("cross.jsonl", [{"context": CONTEXT, "mentions": [crossing]}])
  with expect_error(path, f"{path}:1 [mentions[0].mention_span]", "no single sentence"):
    read_mewslix_mentions(path)


def test_mewslix_wikipedia_pairs(write, expect_error):
  pair = {"contextual_mention": {"context": CONTEXT, "mention": MENTION}, "entity": ENTITY}
  result = read_mewslix_pairs(write("wikipedia_pairs-dev.jsonl", [pair, pair]))
  assert [q.guid for q in result.examples] == ["m1", "m1"]
  assert [c.guid for c in result.candidates] == ["Q38768"]
  path = write("bad.jsonl", [pair | {"entity": ENTITY | {"entity_id": "Q1"}}])
  with expect_error(path, f"{path}:1 [entity.entity_id]"):
    read_mewslix_pairs(path)
