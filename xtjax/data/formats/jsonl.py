"""JSON-lines formats: HellaSwag, CommonsenseQA, ANLI, SNLI/MultiNLI, COPA/XCOPA and Social IQa.

Errors name the file, the line and the field. Every file is read as the upstream release ships it.
"""

from __future__ import annotations

from xtjax.data.formats.common import PathLike, fail, get, iter_jsonl, iter_lines
from xtjax.data.formats.records import ClassificationExample, MultipleChoiceExample, ReadResult
from xtjax.data.formats.tsv import NLI_LABELS

_ANLI_LABELS = {"e": "entailment", "n": "neutral", "c": "contradiction"}
COPA_QUESTIONS = ("cause", "effect")


def read_hellaswag(path: PathLike) -> ReadResult:
  """Reads rowanz/hellaswag `hellaswag_{split}.jsonl`.

  context = ctx_a, question = ctx_b (the start of the sentence each ending completes, possibly
  empty), choices = the 4 endings, label = `label` (absent in the test file). guid = `ind`.
  """
  examples = []
  for number, obj in iter_jsonl(path):
    endings = get(obj, "endings", list, path, number)
    if len(endings) != 4 or not all(isinstance(e, str) for e in endings):
      raise fail(path, number, "endings", "expected a list of 4 strings")
    label = get(obj, "label", int, path, number, optional=True)
    _check_index(path, number, "label", label, len(endings))
    guid = str(get(obj, "ind", int, path, number))
    examples.append(MultipleChoiceExample(guid, get(obj, "ctx_a", str, path, number),
                                          get(obj, "ctx_b", str, path, number), tuple(endings),
                                          label))
  return ReadResult(str(path), examples, {}, {"examples": len(examples)})


def read_commonsenseqa(path: PathLike) -> ReadResult:
  """Reads CommonsenseQA `{split}_rand_split.jsonl` (question.stem, question.choices[].label/text,
  answerKey; the test file has no answerKey). Choices keep file order; label indexes them."""
  examples = []
  for number, obj in iter_jsonl(path):
    question = get(obj, "question", dict, path, number)
    stem = get(question, "stem", str, path, number, "question.stem")
    keys, texts = [], []
    for i, choice in enumerate(get(question, "choices", list, path, number, "question.choices")):
      keys.append(get(choice, "label", str, path, number, f"question.choices[{i}].label"))
      texts.append(get(choice, "text", str, path, number, f"question.choices[{i}].text"))
    if len(set(keys)) != len(keys) or len(keys) < 2:
      raise fail(path, number, "question.choices", f"need 2+ distinct choice labels, got {keys}")
    answer = get(obj, "answerKey", str, path, number, optional=True)
    if answer is not None and answer not in keys:
      raise fail(path, number, "answerKey", f"{answer!r} is not one of the choice labels {keys}")
    label = keys.index(answer) if answer is not None else None
    guid = get(obj, "id", str, path, number)
    examples.append(MultipleChoiceExample(guid, None, stem, tuple(texts), label))
  return ReadResult(str(path), examples, {}, {"examples": len(examples)})


def read_anli(path: PathLike) -> ReadResult:
  """Reads ANLI `R{1,2,3}/{split}.jsonl`: premise in `context` (`premise` in the HF copy),
  `hypothesis`, label 'e'/'n'/'c' mapped to entailment/neutral/contradiction; guid = `uid`."""
  examples = []
  for number, obj in iter_jsonl(path):
    premise_key = "context" if "context" in obj else "premise"
    label = get(obj, "label", str, path, number)
    label = _ANLI_LABELS.get(label, label)
    if label not in NLI_LABELS:
      raise fail(path, number, "label", f"{obj['label']!r} is not one of e/n/c")
    examples.append(ClassificationExample(get(obj, "uid", str, path, number),
                                          get(obj, premise_key, str, path, number),
                                          get(obj, "hypothesis", str, path, number), label))
  return ReadResult(str(path), examples, {}, {"examples": len(examples)})


def read_nli_jsonl(path: PathLike) -> ReadResult:
  """Reads SNLI or MultiNLI `*.jsonl` (sentence1, sentence2, gold_label, pairID).

  Pairs whose gold_label is '-' (no annotator majority) are skipped and counted as
  'no_gold_label'.
  """
  examples, skipped = [], {"no_gold_label": 0}
  for number, obj in iter_jsonl(path):
    label = get(obj, "gold_label", str, path, number)
    if label == "-":
      skipped["no_gold_label"] += 1
      continue
    if label not in NLI_LABELS:
      raise fail(path, number, "gold_label", f"{label!r} is not one of {list(NLI_LABELS)}")
    examples.append(ClassificationExample(get(obj, "pairID", str, path, number),
                                          get(obj, "sentence1", str, path, number),
                                          get(obj, "sentence2", str, path, number), label))
  return ReadResult(str(path), examples, skipped, {"examples": len(examples)})


def read_copa(path: PathLike) -> ReadResult:
  """Reads XCOPA `{val,test}.{lang}.jsonl` or SuperGLUE COPA jsonl.

  context = premise, question = 'cause' or 'effect', choices = (choice1, choice2), label = 0/1
  (None when absent, as in SuperGLUE's test). guid = `idx`.
  """
  examples = []
  for number, obj in iter_jsonl(path):
    question = get(obj, "question", str, path, number)
    if question not in COPA_QUESTIONS:
      raise fail(path, number, "question", f"{question!r} is not 'cause' or 'effect'")
    label = get(obj, "label", int, path, number, optional=True)
    _check_index(path, number, "label", label, 2)
    choices = (get(obj, "choice1", str, path, number), get(obj, "choice2", str, path, number))
    guid = str(get(obj, "idx", int, path, number))
    examples.append(MultipleChoiceExample(guid, get(obj, "premise", str, path, number), question,
                                          choices, label))
  return ReadResult(str(path), examples, {}, {"examples": len(examples)})


def read_siqa(path: PathLike, labels_path: PathLike | None = None) -> ReadResult:
  """Reads Social IQa `{split}.jsonl` (context, question, answerA/B/C) with its
  `{split}-labels.lst` (one 1-based label per line, same order). XTREME-R trains XCOPA on it."""
  labels: list[int] | None = None
  if labels_path is not None:
    labels = []
    for number, line in iter_lines(labels_path):
      if line.strip() not in ("1", "2", "3"):
        raise fail(labels_path, number, "label", f"{line!r} is not 1, 2 or 3")
      labels.append(int(line.strip()) - 1)
  examples = []
  for number, obj in iter_jsonl(path):
    choices = tuple(get(obj, f"answer{c}", str, path, number) for c in "ABC")
    label = None
    if labels is not None:
      if len(examples) >= len(labels):
        raise fail(labels_path, None, None, f"fewer labels than examples in {path}")
      label = labels[len(examples)]
    context = get(obj, "context", str, path, number)
    question = get(obj, "question", str, path, number)
    examples.append(MultipleChoiceExample(str(len(examples)), context, question, choices, label))
  if labels is not None and len(labels) != len(examples):
    raise fail(labels_path, None, None,
               f"{len(labels)} labels for {len(examples)} examples in {path}")
  return ReadResult(str(path), examples, {}, {"examples": len(examples)})


def _check_index(path, number, field, label, n) -> None:
  if label is not None and not 0 <= label < n:
    raise fail(path, number, field, f"{label} is not a choice index in [0, {n})")
