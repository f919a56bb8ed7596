"""`xtjax data stats` (what featurisation makes of a task's data) and `xtjax score` (official
metrics from prediction files in XTREME's submission layout).

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
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from xtjax.errors import ConfigError, DataError

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


# ---- argument plumbing --------------------------------------------------------------------------

def add_source_arguments(p: argparse.ArgumentParser) -> None:
  g = p.add_argument_group("data source")
  g.add_argument("--data-kind", choices=["local", "hf", "tfds"], help="default: hf with --hf-id, tfds with "
                 "--tfds-name, else local")
  g.add_argument("--data-path", help="local file pattern with {split} and {lang} (or a local builder's files)")
  g.add_argument("--data-file", action="append", default=[], metavar="KEY=PATH",
                 help="local file by key: SPLIT, SPLIT.LANG, SPLIT.COMPONENT (anli_plus), entities, labels")
  g.add_argument("--hf-id", help="Hugging Face dataset id (or a builder such as json with --data-path)")
  g.add_argument("--hf-config")
  g.add_argument("--tfds-name")
  g.add_argument("--tfds-data-dir")
  g.add_argument("--split-name", action="append", default=[], metavar="OURS=THEIRS",
                 help="rename a split for the source, e.g. dev=validation")
  g.add_argument("--limit", type=int, help="read only the first N examples")


def _pairs(items: list[str], flag: str) -> dict[str, str]:
  out = {}
  for item in items:
    key, sep, value = item.partition("=")
    if not sep or not key or not value:
      raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE")
    out[key] = value
  return out


def source_from_args(args: argparse.Namespace):
  from xtjax.data.sources import DataSource

  kind = args.data_kind or ("hf" if args.hf_id else "tfds" if args.tfds_name else "local")
  return DataSource(kind=kind, path=args.data_path, files=_pairs(args.data_file, "--data-file"), hf_id=args.hf_id,
                    hf_config=args.hf_config, tfds_name=args.tfds_name, tfds_data_dir=args.tfds_data_dir,
                    split_names=_pairs(args.split_name, "--split-name"), limit=args.limit)


def load_tokenizer(model: str):
  """The tokenizer of an xtjax model folder, a Hugging Face folder or a hub id (no weights loaded)."""
  from xtjax.models import hf_io, store

  folder = hf_io.resolve(model)
  if store.is_model_dir(folder):
    tok_dir = store.tokenizer_dir(folder)
    if tok_dir is None:
      raise ConfigError(f"{folder}: the model folder has no tokenizer")
    return hf_io.load_tokenizer(tok_dir)
  if not hf_io.has_tokenizer(folder):
    raise ConfigError(f"{folder}: no tokenizer files")
  return hf_io.load_tokenizer(folder)


def register(sub) -> None:
  data = sub.add_parser("data", help="inspect task data")
  data_sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
  data_sub.required = True
  p = data_sub.add_parser("stats", help="examples, features, truncation and labels of one split and language")
  p.add_argument("--task", required=True)
  p.add_argument("--split", default="dev")
  p.add_argument("--language", default="en")
  p.add_argument("--model", required=True, help="model folder or hub id whose tokenizer featurises")
  p.add_argument("--max-length", type=int, help="FeatureSettings.max_length (default: its default)")
  p.add_argument("--doc-stride", type=int, help="QA window overlap (FeatureSettings.doc_stride)")
  p.add_argument("--max-query-length", type=int, help="QA question tokens (FeatureSettings.max_query_length)")
  p.add_argument("--cache-dir", help="use (and fill) the feature cache here")
  p.add_argument("--json", action="store_true", help="print one JSON object")
  add_source_arguments(p)
  p.set_defaults(func=run_stats)
  from xtjax.cli.download_cmd import register_data

  register_data(data_sub)  # data download, data check-ccg

  s = sub.add_parser("score", help="official XTREME / XTREME-R metrics of prediction files")
  s.add_argument("--task", required=True, help="task name, comma-separated names, or 'all'")
  s.add_argument("--predictions", required=True, help="submission folder (or one task's folder)")
  s.add_argument("--references", required=True, help="label folder in the same layout")
  s.add_argument("--benchmark", choices=["xtreme", "xtreme-r"], help="language lists and groups (default: "
                 "xtreme-r when xcopa, mewslix or lareqa is scored, else xtreme)")
  s.add_argument("--json", action="store_true")
  s.add_argument("--strict", action="store_true", help="missing or unknown prediction ids are an error "
                 "(default: a warning with the counts; missing ones score 0, unknown ones are ignored)")
  s.set_defaults(func=run_score)


# ---- data stats ---------------------------------------------------------------------------------

def data_stats(task_name: str, split: str, language: str, source, tokenizer, settings, cache_dir=None) -> dict:
  """What `xtjax data stats` prints: the task's `stats(examples, features)`."""
  from xtjax.tasks import registry

  task = registry.get(task_name)
  if cache_dir is not None:
    from xtjax.data.cache import cached_features

    examples, features = cached_features(task, split, language, source, tokenizer, settings, cache_dir)
  else:
    from xtjax.data.cache import read_examples

    examples = read_examples(task, split, language, source)
    features = task.featurize(examples, tokenizer, settings)
  stats = task.stats(examples, features)
  return {"task": task_name, "split": split, "language": language, **stats}


def run_stats(args: argparse.Namespace) -> int:
  from xtjax.tasks.base import FeatureSettings

  given = {"max_length": args.max_length, "doc_stride": args.doc_stride, "max_query_length": args.max_query_length}
  settings = FeatureSettings(**{k: v for k, v in given.items() if v is not None})
  out = data_stats(args.task, args.split, args.language, source_from_args(args), load_tokenizer(args.model),
                   settings, args.cache_dir)
  _print(out, args.json)
  return 0


# ---- score --------------------------------------------------------------------------------------

def _lines(path: Path) -> list[str]:
  if not path.is_file():
    raise DataError(f"{path}: no such file")
  with open(path, encoding="utf-8") as f:
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
  from xtjax.cli.score_upstream import score_upstream, upstream_reference
  from xtjax.tasks.xtreme import benchmark_tasks

  predictions, references = Path(predictions), Path(references)
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


def run_score(args: argparse.Namespace) -> int:
  tasks = [t.strip() for t in args.task.split(",") if t.strip()]
  out = score_submission(tasks, Path(args.predictions), Path(args.references), args.benchmark, args.strict)
  if args.json:
    _print(out, True)
    return 0
  for task, result in out["tasks"].items():
    avgs = ", ".join(f"{k[4:]} {v:.2f}" for k, v in result.items() if k.startswith("avg_") and k != "avg_metric")
    n = len(result["languages"])
    print(f"{task}: {result['avg_metric']:.2f} ({avgs}; {n} language{'s' if n != 1 else ''})")
    for lang, scores in result["languages"].items():
      print(f"  {lang}: " + ", ".join(f"{k} {v:.2f}" for k, v in scores.items()))
    if result["missing_languages"]:
      print(f"  no reference for: {' '.join(result['missing_languages'])}")
  for group, value in out["groups"].items():
    print(f"{group}: {value:.2f}")
  return 0


def _print(obj: dict, as_json: bool) -> None:
  if as_json:
    json.dump(obj, sys.stdout, indent=1, sort_keys=False, default=_jsonable)
    sys.stdout.write("\n")
    return
  for key, value in obj.items():
    if isinstance(value, float):
      value = f"{value:.4f}"
    elif isinstance(value, dict):
      value = json.dumps(value, ensure_ascii=False, default=_jsonable)
    print(f"{key}: {value}")


def _jsonable(x):
  if hasattr(x, "item"):
    return x.item()
  return str(x)
