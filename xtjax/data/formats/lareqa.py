"""LAReQA's XQuAD-R: XQuAD JSON plus per-paragraph `sentence_breaks` ([start, end] offsets).

Answer retrieval from a multilingual pool (XTREME-R): every sentence of every paragraph in every
language is a candidate; a question's relevant candidates are the sentences, in all languages read
together, that contain the answer to the same XQuAD question id. Ids follow XTREME's
`utils_lareqa.py`: question '{qid}_{lang}', candidate '{lang}_{paragraph number}_{sentence index}'.
Candidate text is `context[start:end]`, as XTREME takes it; the files' `sentences` field is not
used (it disagrees with the breaks in two Turkish paragraphs).
"""

from __future__ import annotations

from collections.abc import Mapping

from xtjax.data.formats.common import PathLike, fail, get, load_json
from xtjax.data.formats.records import ReadResult, RetrievalCandidate, RetrievalQuery


def read_xquad_r(path: PathLike, language: str) -> ReadResult:
  """Reads one XQuAD-R file as a single-language pool."""
  return read_lareqa({language: path})


def read_lareqa(files: Mapping[str, PathLike]) -> ReadResult:
  """Reads XQuAD-R files {language: path} into one pool; examples are the questions.

  A question whose answer start falls in no sentence is skipped and counted as
  'answer_outside_sentences' (XTREME skips these too).
  """
  questions: list[tuple[str, str, str, str]] = []  # (qid, language, question, answer candidate)
  candidates: list[RetrievalCandidate] = []
  skipped = {"answer_outside_sentences": 0}
  for language, path in files.items():
    _read_file(path, language, questions, candidates, skipped)
  by_qid: dict[str, list[str]] = {}
  for qid, _, _, answer in questions:
    by_qid.setdefault(qid, []).append(answer)
  examples = [RetrievalQuery(f"{qid}_{language}", language, text, tuple(by_qid[qid]))
              for qid, language, text, _ in questions]
  counts = {"questions": len(examples), "candidates": len(candidates)}
  where = ",".join(str(p) for p in files.values())
  return ReadResult(where, examples, skipped, counts, candidates)


def _read_file(path, language, questions, candidates, skipped) -> None:
  paragraph_number = 0
  seen: set[str] = set()
  for a, article in enumerate(get(load_json(path), "data", list, path, None)):
    for p, paragraph in enumerate(get(article, "paragraphs", list, path, None,
                                      f"data[{a}].paragraphs")):
      loc = f"data[{a}].paragraphs[{p}]"
      paragraph_number += 1
      context = get(paragraph, "context", str, path, None, f"{loc}.context")
      breaks = _sentence_breaks(path, loc, paragraph, context)
      prefix = f"{language}_{paragraph_number}"
      for i, (start, end) in enumerate(breaks):
        candidates.append(
            RetrievalCandidate(f"{prefix}_{i}", language, context[start:end], context))
      for q, qa in enumerate(get(paragraph, "qas", list, path, None, f"{loc}.qas")):
        qloc = f"{loc}.qas[{q}]"
        qid = get(qa, "id", str, path, None, f"{qloc}.id")
        qloc = f"{qloc} (id {qid})"
        if qid in seen:
          raise fail(path, None, f"{qloc}.id", "duplicate question id")
        seen.add(qid)
        answers = get(qa, "answers", list, path, None, f"{qloc}.answers")
        if len(answers) != 1:
          raise fail(path, None, f"{qloc}.answers",
                     f"expected exactly 1 answer, got {len(answers)}")
        text = get(answers[0], "text", str, path, None, f"{qloc}.answers[0].text")
        start = get(answers[0], "answer_start", int, path, None, f"{qloc}.answers[0].answer_start")
        if context[start:start + len(text)] != text or start < 0:
          raise fail(path, None, f"{qloc}.answers[0].answer_start",
                     f"question {qid}: context[{start}:] does not start with {text!r}")
        sentence = next((i for i, (s, e) in enumerate(breaks) if s <= start < e), None)
        if sentence is None:
          skipped["answer_outside_sentences"] += 1
          continue
        question = get(qa, "question", str, path, None, f"{qloc}.question")
        questions.append((qid, language, question, f"{prefix}_{sentence}"))


def _sentence_breaks(path, loc, paragraph, context) -> list[tuple[int, int]]:
  breaks = []
  previous_end = 0
  for i, pair in enumerate(get(paragraph, "sentence_breaks", list, path, None,
                               f"{loc}.sentence_breaks")):
    if (not isinstance(pair, list) or len(pair) != 2
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in pair)):
      raise fail(path, None, f"{loc}.sentence_breaks[{i}]", f"expected [start, end], got {pair!r}")
    start, end = pair
    if not previous_end <= start < end <= len(context):
      raise fail(path, None, f"{loc}.sentence_breaks[{i}]",
                 f"[{start}, {end}] is not an increasing span inside the context "
                 f"(length {len(context)}, previous end {previous_end})")
    breaks.append((start, end))
    previous_end = end
  return breaks
