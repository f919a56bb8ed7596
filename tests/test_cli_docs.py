"""The README's command table lists every command, and help texts name config paths that exist."""

import argparse
import re
from pathlib import Path

from xtjax.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]


def _subparsers(parser):
  return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001


def test_readme_table_lists_every_command():
  table = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `xtjax ")]
  documented = {m for line in table for m in re.findall(r"`xtjax ([a-z-]+)", line)}
  commands = set(_subparsers(build_parser()).choices)
  assert commands - documented == set()


def test_help_texts_name_existing_configs():
  texts = []
  for name, sub in _subparsers(build_parser()).choices.items():
    texts += [(name, a.help) for a in sub._actions if a.help]  # noqa: SLF001
  mentioned = [(name, path) for name, text in texts for path in re.findall(r"configs/[\w/*.-]*\w", text)]
  assert mentioned, "no help text names a config"
  for name, path in mentioned:
    assert list(ROOT.glob(path)) or (ROOT / path).exists(), f"xtjax {name} --help names {path}, which does not exist"
