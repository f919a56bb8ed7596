"""XTREME's submission formats, each an object that reads and scores one `test-{lang}` file, and
where a task's upstream reference files sit. A task's card names its `Submission`; `xtjax score`
(`xtjax.tasks.submission`) never branches on the task's name.

Formats (google-research/xtreme README and evaluate.py):
- labels: one label per line; accuracy (xnli, pawsx, xcopa; tatoeba: the retrieved sentence's index).
- tags: one tag per line, a blank line after each sentence; seqeval F1 / precision / recall.
- pairs: `src_id<TAB>trg_id` per line (BUCC); pair-set F1 / precision / recall.
- qa: predictions {qid: answer text}; references in SQuAD format or {qid: [answers]}; SQuAD v1.1's
  metric, or MLQA's (per-language answer normalisation).
- ranked: predictions {id: [ranked ids]}, references {id: [relevant ids]}; mAP@20.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from xtjax.errors import DataError

log = logging.getLogger(__name__)


def read_lines(path: Path) -> list[str]:
  if not path.is_file():
    raise DataError(f"{path}: no such file")
  with path.open("r", encoding="utf-8") as f:  # pathlib or etils (predictions in a gs:// run)
    return [line.strip() for line in f]


def read_sentences(path: Path) -> list[list[str]]:
  """XTREME's read_tag: tags one per line, sentences ended by blank lines."""
  sentences, current = [], []
  for line in read_lines(path):
    if line:
      current.append(line)
    else:
      sentences.append(current)
      current = []
  if current:
    sentences.append(current)
  return sentences


def read_json(path: Path) -> Any:
  if not path.is_file():
    raise DataError(f"{path}: no such file")
  try:
    return json.loads(path.read_text(encoding="utf-8"))
  except json.JSONDecodeError as e:
    raise DataError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None


def id_mismatch(prediction: Path, reference: Path, pred: dict, gold: dict, strict: bool) -> dict[str, int]:
  """Counts reference ids without a prediction (scored 0, as XTREME's scripts do) and prediction
  ids the reference lacks (ignored); warns with the counts, or fails under `strict`."""
  counts = {"missing_ids": sum(i not in pred for i in gold), "unknown_ids": sum(i not in gold for i in pred)}
  if any(counts.values()):
    msg = (f"{prediction}: {counts['missing_ids']} of {len(gold)} ids in {reference} have no prediction (scored 0), "
           f"{counts['unknown_ids']} predicted ids are not in it (ignored)")
    if strict:
      raise DataError(msg)
    log.warning("%s", msg)
  return counts


class SubmissionFormat:
  """How one `test-{lang}` prediction file is read and scored against its reference."""

  ext = "tsv"
  metrics: tuple[str, ...] = ()
  # True: the upstream release file is scored as a reference file (SQuAD JSON, BUCC gold pairs);
  # False: gold labels are read from it with the task's own reader (`gold`).
  upstream_is_reference = True

  def score(self, prediction: Path, reference: Path, language: str, mismatches: dict | None = None,
            strict: bool = False) -> dict[str, float]:
    raise NotImplementedError

  def gold(self, examples: Sequence[Any]) -> list:
    """Gold values, one per example, from the task's examples of an upstream file."""
    raise NotImplementedError(f"{type(self).__name__} scores upstream files as references")

  def score_gold(self, prediction: Path, gold: list, reference: Path) -> dict[str, float]:
    raise NotImplementedError(f"{type(self).__name__} scores upstream files as references")


class _LineFormat(SubmissionFormat):
  """One value per line (labels) or per blank-line-ended block (tags)."""

  upstream_is_reference = False
  unit = "lines"

  def read(self, path: Path) -> list:
    raise NotImplementedError

  def compare(self, pred: list, gold: list) -> dict[str, float]:
    raise NotImplementedError

  def score(self, prediction, reference, language, mismatches=None, strict=False):
    pred, gold = self.read(prediction), self.read(reference)
    if len(pred) != len(gold):
      raise DataError(f"{prediction}: {len(pred)} {self.unit} but {reference} has {len(gold)}")
    return self.compare(pred, gold)

  def score_gold(self, prediction, gold, reference):
    pred = self.read(prediction)
    if len(pred) != len(gold):
      raise DataError(f"{prediction}: {len(pred)} predictions but {reference} has {len(gold)} examples")
    return self.compare(pred, gold)


class LabelsFormat(_LineFormat):
  metrics = ("accuracy",)

  def read(self, path):
    return read_lines(path)

  def compare(self, pred, gold):
    from xtjax import metrics

    return {"accuracy": metrics.accuracy(pred, gold)}

  def gold(self, examples):
    return [str(e.label) for e in examples]


class TagsFormat(_LineFormat):
  metrics = ("f1", "precision", "recall")
  unit = "sentences"

  def read(self, path):
    return read_sentences(path)

  def compare(self, pred, gold):
    from xtjax import metrics

    return metrics.tagging_scores(pred, gold)

  def gold(self, examples):
    return [list(e.labels) for e in examples]


class PairsFormat(SubmissionFormat):
  metrics = ("f1", "precision", "recall")

  def score(self, prediction, reference, language, mismatches=None, strict=False):
    from xtjax import metrics

    pred = {tuple(line.split("\t")) for line in read_lines(prediction) if line}
    gold = {tuple(line.split("\t")) for line in read_lines(reference) if line}
    return metrics.bucc_f1(dict.fromkeys(pred, 1.0), gold, 1.0)


class _IdKeyedFormat(SubmissionFormat):
  """A JSON object keyed by question / query id, in prediction and reference alike."""

  ext = "json"

  def references(self, path: Path) -> dict:
    return read_json(path)

  def compare(self, pred: dict, gold: dict, language: str) -> dict[str, float]:
    raise NotImplementedError

  def score(self, prediction, reference, language, mismatches=None, strict=False):
    pred, gold = read_json(prediction), self.references(reference)
    if not isinstance(pred, dict):
      raise DataError(f"{prediction}: expected a JSON object keyed by question / query id")
    counts = id_mismatch(prediction, reference, pred, gold, strict)
    if mismatches is not None:
      mismatches.update(counts)
    return self.compare(pred, gold, language)


class QAFormat(_IdKeyedFormat):
  metrics = ("exact_match", "f1")

  def __init__(self, per_language: bool = False):
    self.per_language = per_language  # MLQA's metric normalises answers per language

  def references(self, path):
    doc = read_json(path)
    if isinstance(doc, dict) and isinstance(doc.get("data"), list):
      return {qa["id"]: [a["text"] for a in qa["answers"]] for article in doc["data"]
              for paragraph in article["paragraphs"] for qa in paragraph["qas"]}
    if not isinstance(doc, dict):
      raise DataError(f"{path}: expected SQuAD JSON or {{qid: [answers]}}")
    return doc

  def compare(self, pred, gold, language):
    from xtjax import metrics

    return metrics.mlqa(pred, gold, language) if self.per_language else metrics.squad_v1(pred, gold)


class RankedFormat(_IdKeyedFormat):
  metrics = ("map@20",)

  def compare(self, pred, gold, language):
    from xtjax import metrics

    ids = list(gold)
    return {"map@20": metrics.map_at_k([pred.get(i, []) for i in ids], [gold[i] for i in ids], 20)}


LABELS, TAGS, PAIRS, RANKED = LabelsFormat(), TagsFormat(), PairsFormat(), RankedFormat()
SQUAD, MLQA = QAFormat(), QAFormat(per_language=True)


def _has_tab(path: Path) -> bool:
  with path.open("r", encoding="utf-8") as f:
    return any("\t" in line for line, _ in zip(f, range(5)))


@dataclasses.dataclass(frozen=True)
class Submission:
  """A task's submission format and where its upstream reference files may sit.

  references: candidate files relative to the task's reference folder, first match wins
  ({lang}; {code}: `codes`' name of the language). tabbed: a candidate counts only when it holds
  tabs (PAN-X's upstream test-{lang}.tsv; one without tabs is a submission file). glob: searched
  last; more than one match is an error (XTREME combines a language's UD treebanks). aligned: the
  file's folder holds aligned sentence pairs, and the i-th sentence's match is the i-th (Tatoeba).
  """

  format: SubmissionFormat
  references: tuple[str, ...] = ()
  codes: Mapping[str, str] = dataclasses.field(default_factory=dict)
  tabbed: bool = False
  glob: str = ""
  aligned: bool = False

  def upstream_reference(self, ref_dir: Path, lang: str) -> Path | None:
    """The upstream reference file in `lang` under `ref_dir`, or None (submission layout)."""
    for pattern in self.references:
      path = Path(ref_dir) / pattern.format(lang=lang, code=self.codes.get(lang, lang))
      if path.is_file() and (not self.tabbed or _has_tab(path)):
        return path
    if not self.glob:
      return None
    found = sorted(Path(ref_dir).glob(self.glob.format(lang=lang)))
    if len(found) > 1:
      raise DataError(f"{ref_dir}: {len(found)} {lang} treebanks ({', '.join(p.parent.name for p in found)}); "
                      f"XTREME combines them: pass `data download`'s udpos/{lang}/test.conllu instead")
    return found[0] if found else None

  def upstream_gold(self, read: Callable[[Any], Any], ref: Path) -> list:
    """Gold values (one per example) of an upstream file; `read(source)` reads the task's test split."""
    from xtjax.data.sources import DataSource

    if self.aligned:
      pairs = read(DataSource(path=str(ref.parent))).examples
      return [str(i) for i in range(len(pairs))]
    return self.format.gold(read(DataSource(path=str(ref))))
