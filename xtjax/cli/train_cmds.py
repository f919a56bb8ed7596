"""`xtjax train CONFIG [key=value ...]` and `xtjax eval --checkpoint DIR --task T`."""

from __future__ import annotations

import argparse
import json


def register(sub) -> None:
  p = sub.add_parser("train", help="train one phase from a YAML config (resumes if the workdir has checkpoints)")
  p.add_argument("config", help="YAML config file (see configs/)")
  p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. optim.learning_rate=2e-5")
  p.add_argument("--workdir", default=None, help="run directory (default: runs/<name>)")
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

  return config_lib.load(path, TrainConfig, overrides)


def run_train(args: argparse.Namespace) -> int:
  from pathlib import Path

  from xtjax.parallel.distributed import maybe_initialize
  from xtjax.train.loop import train

  maybe_initialize()
  cfg = load_train_config(args.config, args.overrides)
  workdir = Path(args.workdir or f"runs/{cfg.name}")
  summary = train(cfg, workdir)
  if summary["status"] == "preempted":
    print(f"preempted at step {summary['step']}; checkpoint saved in {workdir}/checkpoints. "
          "Run the same command again to resume.")
    return 0
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
  import dataclasses
  from pathlib import Path

  import yaml

  from xtjax import config as config_lib
  from xtjax.errors import ConfigError
  from xtjax.runs.schema import TrainConfig
  from xtjax.train.loop import Trainer

  run = Path(args.checkpoint)
  cfg_path = run / "config.yaml"
  if not cfg_path.exists():
    raise ConfigError(f"{cfg_path}: missing; --checkpoint must be a run directory written by `xtjax train`")
  cfg = config_lib.from_dict(TrainConfig, yaml.safe_load(cfg_path.read_text()), str(cfg_path))
  tasks = [t for t in cfg.tasks if t.name == args.task]
  if not tasks:
    raise ConfigError(f"{cfg_path}: the run has no task {args.task!r} (tasks: {[t.name for t in cfg.tasks]})")
  t = tasks[0]
  if args.languages:
    t = dataclasses.replace(t, eval_languages=tuple(args.languages.split(",")))
  if args.split:
    t = dataclasses.replace(t, eval_split=args.split)
  cfg = dataclasses.replace(cfg, tasks=(t,), zero_shot=True)
  trainer = Trainer(cfg, run).setup()
  params, _ = trainer.best_params()
  results = trainer.zero_shot(params)
  trainer.ckpt.close()
  if args.json:
    print(json.dumps(results, indent=2, sort_keys=True))
  else:
    _print_zero_shot(results)
  return 0
