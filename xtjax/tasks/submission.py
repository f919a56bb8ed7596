"""Scoring prediction files in XTREME's submission layout with the official metrics (`xtjax score`).

Submission layout (google-research/xtreme README and evaluate.py): one folder per task holding
`test-{lang}.tsv` (`.json` for QA, Mewsli-X and LAReQA); the reference folder has the same layout.
- xnli, pawsx, xcopa, tatoeba: one label per line (tatoeba: the index of the retrieved sentence);
  accuracy.
- udpos, panx: one tag per line, a blank line after each sentence; seqeval F1/precision/recall.
- bucc2018: `src_id<TAB>trg_id` per line; pair-set F1/precision/recall.
- xquad, tydiqa (SQuAD v1.1) and mlqa (MLQA, per language): predictions {qid: answer text};
  references in SQuAD format ({"data": [...]}) or {qid: [answers]}.
- mewslix, lareqa (XTREME-R's mock_test_data): predictions {id: [ranked ids]}, references
  {id: [relevant ids]}; mAP@20.
Per task, each metric is averaged over the languages as evaluate.py does (`avg_<metric>`); the task
score (`avg_metric`) is (EM + F1) / 2 for QA, else F1, accuracy or mAP@20; group scores and the
overall score are means of task scores when every task of the group / benchmark is present.

Upstream reference files: When a task's reference folder holds the upstream release instead of `test-{lang}.tsv` label
files, the gold labels are read with the task's own readers: SQuAD JSON (xquad.{lang}.json,
MLQA's test-context-{lang}-question-{lang}.json, tydiqa.goldp.{lang}.dev.json), CoNLL-U
(`data download`'s udpos/{lang}/test.conllu, or a single UD treebank's *-ud-test.conllu), PAN-X's
`lang:token<TAB>tag` TSV, XCOPA jsonl, XNLI-1.0 / PAWS-X TSV with labels, Tatoeba's aligned
files (gold: the i-th English sentence) and BUCC's gold pairs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from xtjax.errors import ConfigError, DataError
from xtjax.io_utils import as_path

log = logging.getLogger(__name__)

QA_TASKS = ("xquad", "mlqa", "tydiqa")
FORMATS = {"xnli": "labels", "pawsx": "labels", "xcopa": "labels", "tatoeba": "labels", "udpos": "tags",
           "panx": "tags", "bucc2018": "pairs", "xquad": "qa", "mlqa": "qa", "tydiqa": "qa", "mewslix": "ranked",
           "lareqa": "ranked"}
GROUPS = {
    "xtreme": {"classification": ("pawsx", "xnli"), "tagging": ("udpos", "panx"), "qa": QA_TASKS,
               "retrieval": ("bucc2018", "tatoeba")},
    "xtreme-r": {"classification": ("xnli", "xcopa"), "structured_prediction": ("udpos", "panx"), "qa": QA_TASKS,
                 "retrieval": ("mewslix", "lareqa", "tatoeba")},
}



def _lines(path: Path) -> list[str]:
  if not path.is_file():
    raise DataError(f"{path}: no such file")
  with path.open("r", encoding="utf-8") as f:  # pathlib or etils (predictions in a gs:// run)
    return [line.strip() for line in f]


def _sentences(path: Path) -> list[list[str]]:
  """XTREME's read_tag: tags one per line, sentences ended by blank lines."""
  sentences, current = [], []
  for line in _lines(path):
    if line:
      current.append(line)
    else:
      sentences.append(current)
      current = []
  if current:
    sentences.append(current)
  return sentences


def _json(path: Path) -> Any:
  if not path.is_file():
    raise DataError(f"{path}: no such file")
  try:
    return json.loads(path.read_text(encoding="utf-8"))
  except json.JSONDecodeError as e:
    raise DataError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None


def _qa_references(path: Path) -> dict[str, list[str]]:
  doc = _json(path)
  if isinstance(doc, dict) and isinstance(doc.get("data"), list):
    return {qa["id"]: [a["text"] for a in qa["answers"]] for article in doc["data"]
            for paragraph in article["paragraphs"] for qa in paragraph["qas"]}
  if not isinstance(doc, dict):
    raise DataError(f"{path}: expected SQuAD JSON or {{qid: [answers]}}")
  return doc


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


def score_files(task: str, prediction: Path, reference: Path, language: str,
                mismatches: dict | None = None, strict: bool = False) -> dict[str, float]:
  """Official metrics of one task and language from a prediction and a reference file. For id-keyed
  formats, `mismatches` (when given) receives `id_mismatch`'s counts."""
  from xtjax import metrics

  kind = FORMATS[task]
  if kind in ("labels", "tags"):
    read = _lines if kind == "labels" else _sentences
    pred, gold = read(prediction), read(reference)
    if len(pred) != len(gold):
      what = "lines" if kind == "labels" else "sentences"
      raise DataError(f"{prediction}: {len(pred)} {what} but {reference} has {len(gold)}")
    return {"accuracy": metrics.accuracy(pred, gold)} if kind == "labels" else metrics.tagging_scores(pred, gold)
  if kind == "pairs":
    pred = {tuple(line.split("\t")) for line in _lines(prediction) if line}
    gold = {tuple(line.split("\t")) for line in _lines(reference) if line}
    return metrics.bucc_f1(dict.fromkeys(pred, 1.0), gold, 1.0)
  pred, gold = _json(prediction), (_qa_references(reference) if kind == "qa" else _json(reference))
  if not isinstance(pred, dict):
    raise DataError(f"{prediction}: expected a JSON object keyed by question / query id")
  counts = id_mismatch(prediction, reference, pred, gold, strict)
  if mismatches is not None:
    mismatches.update(counts)
  if kind == "qa":
    return metrics.mlqa(pred, gold, language) if task == "mlqa" else metrics.squad_v1(pred, gold)
  ids = list(gold)
  return {"map@20": metrics.map_at_k([pred.get(i, []) for i in ids], [gold[i] for i in ids], 20)}


def _task_folder(root: Path, task: str) -> Path:
  return root / task if (root / task).is_dir() else root


def _task_metric(task: str, avg: dict[str, float]) -> float:
  if task in QA_TASKS:
    return (avg["avg_exact_match"] + avg["avg_f1"]) / 2
  for metric in ("avg_f1", "avg_accuracy", "avg_map@20"):
    if metric in avg:
      return avg[metric]
  raise DataError(f"{task}: no task metric among {sorted(avg)}")


def score_submission(tasks: list[str], predictions: Path, references: Path, benchmark: str | None = None,
                     strict: bool = False) -> dict:
  """Scores every task's `test-{lang}` files; see the module docstring for formats and averages.
  Per task, `id_mismatches` lists the languages whose id-keyed predictions miss or add ids."""
  from xtjax.tasks.xtreme import benchmark_tasks

  predictions, references = as_path(predictions), Path(references)  # predictions may be in a gs:// run
  if tasks == ["all"]:
    tasks = [t for t in FORMATS if (predictions / t).is_dir() and (references / t).is_dir()]
    if not tasks:
      raise DataError(f"{predictions}: no task folder also found in {references}")
  unknown = [t for t in tasks if t not in FORMATS]
  if unknown:
    raise ConfigError(f"cannot score {unknown}; known: {sorted(FORMATS)}")
  benchmark = benchmark or ("xtreme-r" if {"xcopa", "mewslix", "lareqa"} & set(tasks) else "xtreme")
  specs = {**benchmark_tasks("xtreme-r" if benchmark == "xtreme" else "xtreme"), **benchmark_tasks(benchmark)}
  out: dict[str, Any] = {"benchmark": benchmark, "tasks": {}}
  for task in tasks:
    pred_dir, ref_dir = _task_folder(predictions, task), _task_folder(references, task)
    ext = "json" if FORMATS[task] in ("qa", "ranked") else "tsv"
    per_lang, missing, mismatches = {}, [], {}
    for lang in specs[task].languages:
      upstream = upstream_reference(task, ref_dir, lang)  # upstream release files instead of labels
      if upstream is not None:
        per_lang[lang] = score_upstream(task, pred_dir / f"test-{lang}.{ext}", upstream, lang)
        continue
      ref = ref_dir / f"test-{lang}.{ext}"
      if not ref.exists():
        missing.append(lang)
        continue
      pred = pred_dir / f"test-{lang}.{ext}"
      if not pred.exists():
        raise DataError(f"{pred}: no prediction file (the reference {ref} exists)")
      counts: dict[str, int] = {}
      per_lang[lang] = score_files(task, pred, ref, lang, counts, strict)
      if any(counts.values()):
        mismatches[lang] = counts
    if not per_lang:
      raise DataError(f"{ref_dir}: no test-{{lang}}.{ext} reference file for any {task} language")
    avg = {}
    for metric in next(iter(per_lang.values())):
      values = [scores[metric] for scores in per_lang.values()]
      avg[f"avg_{metric}"] = sum(values) / len(values)
    out["tasks"][task] = {"languages": per_lang, **avg, "avg_metric": _task_metric(task, avg),
                          "missing_languages": missing, "id_mismatches": mismatches}
  scored = out["tasks"]
  complete = {t for t, v in scored.items() if not v["missing_languages"]}
  groups = {g: sum(scored[t]["avg_metric"] for t in members) / len(members)
            for g, members in GROUPS[benchmark].items() if set(members) <= complete}
  every = benchmark_tasks(benchmark)
  if set(every) <= complete:
    groups["all_task"] = sum(scored[t]["avg_metric"] for t in every) / len(every)
  out["groups"] = groups
  return out


# ---- upstream reference files ------------------------------------------------------------------

# Candidate upstream files per task, relative to the task's reference folder, first match wins.
CANDIDATES = {
    "xquad": ("xquad.{lang}.json", "xquad/xquad.{lang}.json"),
    "mlqa": ("test-context-{lang}-question-{lang}.json", "test/test-context-{lang}-question-{lang}.json",
             "MLQA_V1/test/test-context-{lang}-question-{lang}.json"),
    "tydiqa": ("tydiqa.goldp.{lang}.dev.json", "tydiqa-goldp-v1.1-dev/tydiqa.goldp.{lang}.dev.json"),
    "udpos": ("{lang}/test.conllu", "udpos/{lang}/test.conllu"),
    "panx": ("test-{lang}.tsv", "panx/test-{lang}.tsv"),
    "xcopa": ("test.{lang}.jsonl", "{lang}/test.{lang}.jsonl", "data/{lang}/test.{lang}.jsonl"),
    "xnli": ("xnli.test.tsv", "XNLI-1.0/xnli.test.tsv"),
    "pawsx": ("{lang}/test_2k.tsv", "x-final/{lang}/test_2k.tsv"),
    "tatoeba": ("tatoeba.{code}-eng.eng", "v1/tatoeba.{code}-eng.eng"),
    "bucc2018": ("{lang}-en.training.gold", "{lang}-en/{lang}-en.training.gold"),
}


def upstream_reference(task: str, ref_dir: Path, lang: str) -> Path | None:
  """The upstream reference file of `task` in `lang` under `ref_dir`, or None (submission layout)."""
  from xtjax.tasks.source_table import TATOEBA_CODES

  for pattern in CANDIDATES.get(task, ()):
    path = Path(ref_dir) / pattern.format(lang=lang, code=TATOEBA_CODES.get(lang, lang))
    if path.is_file() and (task != "panx" or _has_tab(path)):  # panx test-{lang}.tsv: tags only = submission
      return path
  if task == "udpos":
    treebanks = sorted(Path(ref_dir).glob(f"UD_*/{lang}_*-ud-test.conllu"))
    if len(treebanks) > 1:
      raise DataError(f"{ref_dir}: {len(treebanks)} {lang} treebanks ({', '.join(p.parent.name for p in treebanks)}); "
                      f"XTREME combines them: pass `data download`'s udpos/{lang}/test.conllu instead")
    return treebanks[0] if treebanks else None
  return None


def _has_tab(path: Path) -> bool:
  with path.open("r", encoding="utf-8") as f:
    return any("\t" in line for line, _ in zip(f, range(5)))


def upstream_gold(task: str, ref: Path, lang: str) -> list:
  """Gold labels (one per example) or tag sequences (one list per sentence) from an upstream file."""
  from xtjax.data.sources import DataSource
  from xtjax.tasks import registry

  if task == "tatoeba":
    pairs = registry.get(task).read("test", lang, DataSource(path=str(ref.parent))).examples
    return [str(i) for i in range(len(pairs))]  # XTREME: the i-th sentence's match is the i-th
  examples = registry.get(task).read("test", lang, DataSource(path=str(ref)))
  if task in ("udpos", "panx"):
    return [list(e.labels) for e in examples]
  return [str(e.label) for e in examples]


def score_upstream(task: str, prediction: Path, reference: Path, lang: str) -> dict[str, float]:
  """Official metrics of one task and language: predictions in the submission layout, gold upstream."""
  from xtjax import metrics

  if not prediction.exists():
    raise DataError(f"{prediction}: no prediction file (the reference {reference} exists)")
  if FORMATS[task] in ("qa", "pairs", "ranked"):  # SQuAD JSON and BUCC gold pairs read as they are
    return score_files(task, prediction, reference, lang)
  gold = upstream_gold(task, reference, lang)
  pred = _lines(prediction) if FORMATS[task] == "labels" else _sentences(prediction)
  if len(pred) != len(gold):
    raise DataError(f"{prediction}: {len(pred)} predictions but {reference} has {len(gold)} examples")
  return {"accuracy": metrics.accuracy(pred, gold)} if FORMATS[task] == "labels" else metrics.tagging_scores(pred, gold)
