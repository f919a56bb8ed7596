"""`xtjax` command line: parse arguments, dispatch to one function, print one clear line on error."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from xtjax.errors import XtjaxError

# Each module defines `register(subparsers)` that adds its sub-commands with `set_defaults(func=run)`.
COMMAND_MODULES = (
    "xtjax.cli.model_cmds",  # convert, export, presets
    "xtjax.cli.embed_cmd",  # embed
    "xtjax.cli.generate_cmd",  # generate (mT5 / T5)
    "xtjax.cli.train_cmds",  # train, eval
    "xtjax.cli.pipeline_cmd",  # pipeline
    "xtjax.cli.report_cmd",  # report
    "xtjax.cli.data_cmds",  # data stats, score
    "xtjax.cli.bench_cmds",  # bench infer, bench train
    "xtjax.cli.plan_cmd",  # plan (AOT compile for a TPU slice)
)


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="xtjax", description=__doc__.splitlines()[0] if __doc__ else None)
  parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
  parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
  sub = parser.add_subparsers(dest="command", metavar="COMMAND")
  sub.required = True
  for name in COMMAND_MODULES:
    try:
      mod = importlib.import_module(name)
    except ModuleNotFoundError as e:
      if e.name == name:  # a command group not built yet
        continue
      raise
    mod.register(sub)
  return parser


def main(argv: list[str] | None = None) -> int:
  parser = build_parser()
  args, extra = parser.parse_known_args(argv)
  # `key=value` overrides may come after options (`train CONFIG --workdir W a.b=1`).
  if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
    args.overrides = list(args.overrides) + extra
  elif extra:
    parser.error(f"unrecognized arguments: {' '.join(extra)}")
  logging.basicConfig(level="DEBUG" if args.debug else args.log_level,
                      format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
  for noisy in ("absl", "jax._src", "orbax", "etils", "urllib3", "httpx", "filelock", "huggingface_hub"):
    logging.getLogger(noisy).setLevel(logging.WARNING if not args.debug else logging.DEBUG)
  from xtjax.infer.xla_setup import tune_cpu_flags

  # XLA:CPU flags for the command's compute dtype, before the first JAX computation (commands
  # without --dtype, e.g. train, keep XLA's defaults; a no-op once a backend is up).
  tune_cpu_flags(getattr(args, "dtype", None) or ("float32" if hasattr(args, "dtype") else None))
  try:
    return int(args.func(args) or 0)
  except XtjaxError as e:
    if args.debug:
      raise
    print(f"xtjax {args.command}: error: {e}", file=sys.stderr)
    return e.exit_code
  except KeyboardInterrupt:
    print(f"xtjax {args.command}: interrupted", file=sys.stderr)
    return 130
  except Exception as e:  # noqa: BLE001 - the top level turns any failure into one line
    if args.debug:
      raise
    print(f"xtjax {args.command}: internal error: {type(e).__name__}: {e} (run with --debug for the traceback)",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
  sys.exit(main())
