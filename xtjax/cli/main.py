"""`xtjax` command line: parse arguments, dispatch to one function, print one clear line on error."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import re
import sys
import threading

from xtjax.errors import XtjaxError, storage_problem

# Each module defines `register(subparsers)` that adds its sub-commands with `set_defaults(func=run)`.
COMMAND_MODULES = (
    "xtjax.cli.model_cmds",  # convert, export, presets
    "xtjax.cli.embed_cmd",  # embed
    "xtjax.cli.generate_cmd",  # generate (mT5 / T5)
    "xtjax.cli.train_cmds",  # train, eval
    "xtjax.cli.pipeline_cmd",  # pipeline
    "xtjax.cli.sweep_cmd",  # sweep, sweep status
    "xtjax.cli.report_cmd",  # report
    "xtjax.cli.data_cmds",  # data stats, score
    "xtjax.cli.tasks_cmd",  # tasks
    "xtjax.cli.bench_cmds",  # bench infer, bench train
    "xtjax.cli.plan_cmd",  # plan (AOT compile for a TPU slice)
)


# absl/Orbax warnings every restore prints, none of which the user can act on.
HARMLESS_WARNINGS = re.compile(
    r"CheckpointManagerOptions\.read_only=True, setting save_interval_steps=0"
    r"|Given directory is read only="
    r"|Metadata file does not exist: .*/_CHECKPOINT_METADATA$")


def _drop_harmless(record: logging.LogRecord) -> bool:
  """Drops the harmless warnings, and Orbax's tracebacks for a full or read-only disk (the command
  ends with one line naming the path instead)."""
  if record.exc_info and storage_problem(record.exc_info[1]):
    return False
  return not HARMLESS_WARNINGS.search(record.getMessage()) and not storage_problem(record.getMessage())


def _reader_gone() -> int:
  """stdout's reader went away (`xtjax score --json | head`): stop quietly, as `cat` does; Python's
  final flush then writes to /dev/null instead of raising again."""
  devnull = os.open(os.devnull, os.O_WRONLY)
  with contextlib.suppress(OSError, ValueError):  # a stdout without a file descriptor
    os.dup2(devnull, sys.stdout.fileno())
  os.close(devnull)
  return 141  # 128 + SIGPIPE, what a shell reports for `cat big | head`


def _quiet_teardown() -> None:
  """After a reported disk failure, writers still open (TensorBoard's atexit flush and its worker
  thread) fail the same way while the process exits: keep their tracebacks off the terminal."""
  sys.unraisablehook = lambda unraisable: None
  threading.excepthook = lambda args: None


def _closed_loop_dropped(unraisable) -> None:
  """A failed async checkpoint write (a full disk) closes Orbax's event loop while TensorStore still
  completes the writes in flight: each completion's callback meets the closed loop and Python prints
  its traceback (one per file, dozens). The failure itself reaches the main thread, which ends the
  command with one line naming the path; these echoes are dropped (`--debug` keeps them)."""
  if isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) == "Event loop is closed":
    return
  _previous_unraisablehook[0](unraisable)


_previous_unraisablehook = [sys.unraisablehook]


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="xtjax", description=__doc__.splitlines()[0] if __doc__ else None)
  parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
  parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
  sub = parser.add_subparsers(dest="command", metavar="COMMAND")
  sub.required = True
  for name in COMMAND_MODULES:
    importlib.import_module(name).register(sub)
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
  if not args.debug and _drop_harmless not in logging.getLogger("absl").filters:
    logging.getLogger("absl").addFilter(_drop_harmless)
  if not args.debug and sys.unraisablehook is not _closed_loop_dropped:
    _previous_unraisablehook[0] = sys.unraisablehook
    sys.unraisablehook = _closed_loop_dropped
  # XLA:CPU flags for the command's compute dtype, before the first JAX computation (commands
  # without --dtype, e.g. train, keep XLA's defaults; a no-op once a backend is up). Only those
  # import JAX here: the others validate their input first and fail in well under a second.
  dtype = getattr(args, "dtype", None) or ("float32" if hasattr(args, "dtype") else None)
  if dtype is not None:
    from xtjax.infer.xla_setup import tune_cpu_flags

    tune_cpu_flags(dtype)
  try:
    code = int(args.func(args) or 0)
    sys.stdout.flush()  # a closed pipe shows here, not at exit
    return code
  except BrokenPipeError:
    return _reader_gone()
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
    problem = storage_problem(e)
    if problem:  # a full or read-only disk; a later run removes the unfinished checkpoint
      print(f"xtjax {args.command}: error: {problem}", file=sys.stderr)
      _quiet_teardown()
      return XtjaxError.exit_code
    print(f"xtjax {args.command}: internal error: {type(e).__name__}: {e} (run with --debug for the traceback)",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
  sys.exit(main())
