"""SQuAD-style JSON: SQuAD v1.1 and v2.0, XQuAD, MLQA and TyDiQA-GoldP (all share the schema).

`{"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question", "answers":
[{"text", "answer_start"}], "is_impossible"?}]}]}]}`. `answer_start` is a character offset into
`context` (a Python str index); every answer is checked against it.
"""

from __future__ import annotations

from xtjax.data.formats.common import PathLike, fail, get, load_json
from xtjax.data.formats.records import QAExample, ReadResult

SPAN_POLICIES = ("error", "skip")


def read_squad(path: PathLike, *, on_bad_span: str = "error") -> ReadResult:
  """Reads one SQuAD-format file into QAExamples (one per question).

  An answer whose `answer_start` does not point at its `text` is a DataError naming the file and
  the question id; with on_bad_span="skip" the question is left out and counted instead.
  v2.0 questions with `is_impossible: true` must have no answers; they come back with
  is_impossible=True. Questions with no answers and no `is_impossible` (label-stripped test
  files) come back with answers=() and are counted as 'unlabelled'.
  """
  if on_bad_span not in SPAN_POLICIES:
    raise ValueError(f"on_bad_span must be one of {SPAN_POLICIES}, got {on_bad_span!r}")
  doc = load_json(path)
  articles = get(doc, "data", list, path, None)
  examples: list[QAExample] = []
  seen: set[str] = set()
  skipped = {"answer_span_mismatch": 0}
  counts = {"articles": len(articles), "paragraphs": 0, "questions": 0, "answers": 0,
            "unanswerable": 0, "unlabelled": 0}
  for a, article in enumerate(articles):
    loc = f"data[{a}]"
    paragraphs = get(article, "paragraphs", list, path, None, f"{loc}.paragraphs")
    for p, paragraph in enumerate(paragraphs):
      ploc = f"{loc}.paragraphs[{p}]"
      counts["paragraphs"] += 1
      context = get(paragraph, "context", str, path, None, f"{ploc}.context")
      for q, qa in enumerate(get(paragraph, "qas", list, path, None, f"{ploc}.qas")):
        qloc = f"{ploc}.qas[{q}]"
        qid = get(qa, "id", str, path, None, f"{qloc}.id")
        qloc = f"{qloc} (id {qid})"
        if qid in seen:
          raise fail(path, None, f"{qloc}.id", "duplicate question id")
        seen.add(qid)
        example = _read_question(path, qa, qid, qloc, context, on_bad_span)
        if example is None:
          skipped["answer_span_mismatch"] += 1
          continue
        examples.append(example)
        counts["questions"] += 1
        counts["answers"] += len(example.answers)
        counts["unanswerable"] += example.is_impossible
        counts["unlabelled"] += not example.answers and not example.is_impossible
  return ReadResult(str(path), examples, skipped, counts)


def _read_question(path, qa: dict, qid: str, qloc: str, context: str,
                   on_bad_span: str) -> QAExample | None:
  question = get(qa, "question", str, path, None, f"{qloc}.question")
  is_impossible = get(qa, "is_impossible", bool, path, None, f"{qloc}.is_impossible", optional=True)
  raw_answers = get(qa, "answers", list, path, None, f"{qloc}.answers")
  if is_impossible and raw_answers:
    raise fail(path, None, f"{qloc}.answers", "is_impossible is true but answers are given")
  answers = []
  for i, answer in enumerate(raw_answers):
    aloc = f"{qloc}.answers[{i}]"
    text = get(answer, "text", str, path, None, f"{aloc}.text")
    start = get(answer, "answer_start", int, path, None, f"{aloc}.answer_start")
    found = context[start:start + len(text)] if start >= 0 else None
    if found != text:
      if on_bad_span == "skip":
        return None
      raise fail(path, None, f"{aloc}.answer_start",
                 f"question {qid}: context[{start}:{start + len(text)}] is {found!r}, "
                 f"not the answer text {text!r}")
    answers.append((text, start))
  return QAExample(qid, question, context, tuple(answers), bool(is_impossible))
