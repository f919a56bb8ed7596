"""Scoring prediction files in XTREME's submission layout with the official metrics (`xtjax score`).

Each task's card names its format and reference files (`xtjax.tasks.submission_formats`); nothing
here branches on a task's name.

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
score (`avg_metric`) is the mean of the card's score metrics ((EM + F1) / 2 for QA, else F1, accuracy
or mAP@20); group scores and the overall score are means of task scores when every task of the
group / benchmark is present.

Upstream reference files: When a task's reference folder holds the upstream release instead of `test-{lang}.tsv` label
files, the gold labels are read with the task's own readers: SQuAD JSON (xquad.{lang}.json,
MLQA's test-context-{lang}-question-{lang}.json, tydiqa.goldp.{lang}.dev.json), CoNLL-U
(`data download`'s udpos/{lang}/test.conllu, or a single UD treebank's *-ud-test.conllu), PAN-X's
`lang:token<TAB>tag` TSV, XCOPA jsonl, XNLI-1.0 / PAWS-X TSV with labels, Tatoeba's aligned
files (gold: the i-th English sentence) and BUCC's gold pairs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xtjax.errors import ConfigError, DataError
from xtjax.io_utils import as_path
from xtjax.tasks import registry
from xtjax.tasks.card import TaskCard


def _scorable() -> dict[str, TaskCard]:
  """Cards of the tasks `xtjax score` knows, in registration order."""
  return {card.name: card for card in registry.cards() if card.submission is not None}


def score_files(task: str, prediction: Path, reference: Path, language: str,
                mismatches: dict | None = None, strict: bool = False) -> dict[str, float]:
  """Official metrics of one task and language from a prediction and a reference file. For id-keyed
  formats, `mismatches` (when given) receives `id_mismatch`'s counts."""
  return registry.card(task).submission.format.score(prediction, reference, language, mismatches, strict)


def _task_folder(root: Path, task: str) -> Path:
  return root / task if (root / task).is_dir() else root


def _task_metric(card: TaskCard, avg: dict[str, float]) -> float:
  keys = [f"avg_{m}" for m in card.score_metrics]
  if not keys or any(k not in avg for k in keys):
    raise DataError(f"{card.name}: no task metric among {sorted(avg)}")
  return sum(avg[k] for k in keys) / len(keys)


def _default_benchmark(cards: list[TaskCard]) -> str:
  """XTREME-R when a task is in XTREME-R only (xcopa, mewslix, lareqa), else XTREME."""
  return "xtreme-r" if any(c.benchmarks and "xtreme" not in c.benchmarks for c in cards) else "xtreme"


def score_submission(tasks: list[str], predictions: Path, references: Path, benchmark: str | None = None,
                     strict: bool = False) -> dict:
  """Scores every task's `test-{lang}` files; see the module docstring for formats and averages.
  Per task, `id_mismatches` lists the languages whose id-keyed predictions miss or add ids."""
  from xtjax.tasks.xtreme import benchmark_groups, benchmark_tasks

  predictions, references = as_path(predictions), Path(references)  # predictions may be in a gs:// run
  known = _scorable()
  if tasks == ["all"]:
    tasks = [t for t in known if (predictions / t).is_dir() and (references / t).is_dir()]
    if not tasks:
      raise DataError(f"{predictions}: no task folder also found in {references}")
  unknown = [t for t in tasks if t not in known]
  if unknown:
    raise ConfigError(f"cannot score {unknown}; known: {sorted(known)}")
  benchmark = benchmark or _default_benchmark([known[t] for t in tasks])
  specs = {**benchmark_tasks("xtreme-r" if benchmark == "xtreme" else "xtreme"), **benchmark_tasks(benchmark)}
  out: dict[str, Any] = {"benchmark": benchmark, "tasks": {}}
  for task in tasks:
    card = known[task]
    pred_dir, ref_dir = _task_folder(predictions, task), _task_folder(references, task)
    ext = card.submission.format.ext
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
    out["tasks"][task] = {"languages": per_lang, **avg, "avg_metric": _task_metric(card, avg),
                          "missing_languages": missing, "id_mismatches": mismatches}
  scored = out["tasks"]
  complete = {t for t, v in scored.items() if not v["missing_languages"]}
  groups = {g: sum(scored[t]["avg_metric"] for t in members) / len(members)
            for g, members in benchmark_groups(benchmark).items() if set(members) <= complete}
  every = benchmark_tasks(benchmark)
  if set(every) <= complete:
    groups["all_task"] = sum(scored[t]["avg_metric"] for t in every) / len(every)
  out["groups"] = groups
  return out


# ---- upstream reference files ------------------------------------------------------------------

def upstream_reference(task: str, ref_dir: Path, lang: str) -> Path | None:
  """The upstream reference file of `task` in `lang` under `ref_dir`, or None (submission layout)."""
  return registry.card(task).submission.upstream_reference(ref_dir, lang)


def upstream_gold(task: str, ref: Path, lang: str) -> list:
  """Gold labels (one per example) or tag sequences (one list per sentence) from an upstream file."""
  return registry.card(task).submission.upstream_gold(lambda source: registry.get(task).read("test", lang, source),
                                                      ref)


def score_upstream(task: str, prediction: Path, reference: Path, lang: str) -> dict[str, float]:
  """Official metrics of one task and language: predictions in the submission layout, gold upstream."""
  if not prediction.exists():
    raise DataError(f"{prediction}: no prediction file (the reference {reference} exists)")
  fmt = registry.card(task).submission.format
  if fmt.upstream_is_reference:  # SQuAD JSON and BUCC gold pairs read as they are
    return score_files(task, prediction, reference, lang)
  return fmt.score_gold(prediction, upstream_gold(task, reference, lang), reference)
