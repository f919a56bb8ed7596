"""`xtjax data stats` (what featurisation makes of a task's data) and `xtjax score` (official
metrics from prediction files; the scoring itself is `xtjax.tasks.submission`)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from xtjax.errors import ConfigError
from xtjax.tasks.submission import score_submission  # noqa: F401 - the command's library function

log = logging.getLogger(__name__)

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

def run_score(args: argparse.Namespace) -> int:
  tasks = [t.strip() for t in args.task.split(",") if t.strip()]
  out = score_submission(tasks, args.predictions, args.references, args.benchmark, args.strict)
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
