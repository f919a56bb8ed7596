"""`xtjax train CONFIG [key=value ...]` and `xtjax eval --checkpoint DIR --task T`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys


def register(sub) -> None:
  p = sub.add_parser("train", help="train one phase from a YAML config (resumes if the workdir has checkpoints)")
  p.add_argument("config", help="YAML config file (see configs/)")
  p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. optim.learning_rate=2e-5")
  p.add_argument("--workdir", default=None,
                 help="run directory (default: runs/<name>); its tokenised features go to WORKDIR/feature_cache "
                      "unless the config sets cache_dir")
  p.add_argument("--overwrite", action="store_true",
                 help="a workdir holding a different config starts afresh (default: an error naming the keys)")
  p.add_argument("--print-config", action="store_true", help="print the fully resolved config as YAML and exit")
  p.set_defaults(func=run_train)

  p = sub.add_parser("eval", help="zero-shot evaluation of a finished run or model folder")
  p.add_argument("--checkpoint", required=True, help="run directory (its best checkpoint)")
  p.add_argument("--task", required=True)
  p.add_argument("--languages", default=None, help="comma-separated (default: the run's configured languages)")
  p.add_argument("--split", default=None)
  p.add_argument("--json", action="store_true")
  p.set_defaults(func=run_eval)


def load_train_config(path: str, overrides):
  from xtjax import config as config_lib
  from xtjax.runs.schema import TrainConfig

  cfg = config_lib.load(path, TrainConfig, overrides)
  check_task_names(cfg, path)
  return cfg


def check_task_names(cfg, where: str) -> None:
  """Every task of a run is registered: a typo is one line naming the file (with "did you mean"), before JAX loads."""
  from xtjax.errors import ConfigError
  from xtjax.tasks import registry

  for i, task in enumerate(cfg.tasks):
    try:
      registry.get(task.name)
    except ConfigError as e:
      raise ConfigError(f"{where}: tasks[{i}].name: {e}") from None


def run_train(args: argparse.Namespace) -> int:
  cfg = load_train_config(args.config, args.overrides)  # a bad config fails here, before JAX loads
  from xtjax.io_utils import as_path
  from xtjax.parallel.distributed import maybe_initialize
  from xtjax.train import preemption
  from xtjax.train.loop import train

  if args.print_config:
    import yaml

    from xtjax.runs.identity import resolved

    print(yaml.safe_dump(resolved(cfg), sort_keys=False, allow_unicode=True), end="")
    return 0
  maybe_initialize()
  workdir = as_path(args.workdir or f"runs/{cfg.name}")
  if cfg.cache_dir is None:  # a lone run keeps its feature cache inside its workdir (pipeline phases share theirs)
    cfg = dataclasses.replace(cfg, cache_dir=str(workdir / "feature_cache"))
  summary = train(cfg, workdir, overwrite=args.overwrite)
  if summary["status"] == "preempted":
    print(preemption.interrupted_line(summary["step"]), file=sys.stderr)
    return preemption.exit_code()  # 130 (SIGINT), 143 (SIGTERM)
  _print_zero_shot(summary.get("zero_shot", {}))
  print(f"finished {summary['step']} steps in {workdir} (best dev: {json.dumps((summary.get('best') or {}).get('dev'))})")
  return 0


def _print_zero_shot(zs: dict) -> None:
  for task, per_lang in zs.items():
    langs = [lang for lang in per_lang if lang != "avg"] + ["avg"]
    metric = sorted(per_lang["avg"])
    print(f"\n{task}: " + ", ".join(metric))
    print("  " + " ".join(f"{lang:>7}" for lang in langs))
    for m in metric:
      print("  " + " ".join(f"{per_lang[lang].get(m, float('nan')):7.2f}" for lang in langs) + f"  {m}")


def run_eval(args: argparse.Namespace) -> int:
  from xtjax.evaluation.zero_shot import zero_shot_eval

  languages = args.languages.split(",") if args.languages else None
  results = zero_shot_eval(args.checkpoint, args.task, languages, split=args.split)
  if args.json:
    print(json.dumps(results, indent=2, sort_keys=True))
  else:
    _print_zero_shot(results)
  return 0
