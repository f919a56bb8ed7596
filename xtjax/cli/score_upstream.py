"""`xtjax score` against upstream reference files, next to XTREME's submission layout.

When a task's reference folder holds the upstream release instead of `test-{lang}.tsv` label
files, the gold labels are read with the task's own readers: SQuAD JSON (xquad.{lang}.json,
MLQA's test-context-{lang}-question-{lang}.json, tydiqa.goldp.{lang}.dev.json), CoNLL-U
(`data download`'s udpos/{lang}/test.conllu, or a single UD treebank's *-ud-test.conllu), PAN-X's
`lang:token<TAB>tag` TSV, XCOPA jsonl, XNLI-1.0 / PAWS-X TSV with labels, Tatoeba's aligned
files (gold: the i-th English sentence) and BUCC's gold pairs.
"""

from __future__ import annotations

from pathlib import Path

from xtjax.errors import DataError

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
  with open(path, encoding="utf-8") as f:
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
  from xtjax.cli.data_cmds import FORMATS, _lines, _sentences, score_files

  if not prediction.exists():
    raise DataError(f"{prediction}: no prediction file (the reference {reference} exists)")
  if FORMATS[task] in ("qa", "pairs", "ranked"):  # SQuAD JSON and BUCC gold pairs read as they are
    return score_files(task, prediction, reference, lang)
  gold = upstream_gold(task, reference, lang)
  pred = _lines(prediction) if FORMATS[task] == "labels" else _sentences(prediction)
  if len(pred) != len(gold):
    raise DataError(f"{prediction}: {len(pred)} predictions but {reference} has {len(gold)} examples")
  return {"accuracy": metrics.accuracy(pred, gold)} if FORMATS[task] == "labels" else metrics.tagging_scores(pred, gold)
