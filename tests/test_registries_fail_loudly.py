"""A typo or a broken module in a registry's module list fails loudly instead of being skipped."""

import subprocess
import sys
from pathlib import Path

import pytest

from xtjax.cli import main as cli_main
from xtjax.models import registry as model_registry
from xtjax.tasks import registry as task_registry

ROOT = Path(__file__).resolve().parents[1]


def test_task_registry_import_error_propagates(monkeypatch):
  monkeypatch.setattr(task_registry, "TASK_MODULES", task_registry.TASK_MODULES + ("xtjax.tasks.clasification",))
  with pytest.raises(ModuleNotFoundError, match="xtjax.tasks.clasification"):
    task_registry.get("xnli")


def test_cli_command_table_import_error_propagates(monkeypatch):
  monkeypatch.setattr(cli_main, "COMMAND_MODULES", cli_main.COMMAND_MODULES + ("xtjax.cli.report_cmdz",))
  with pytest.raises(ModuleNotFoundError, match="xtjax.cli.report_cmdz"):
    cli_main.build_parser()


def test_model_registry_import_error_propagates():
  # A family module that fails to import takes the registry down with it (no `except ImportError`).
  code = "import sys; sys.modules['xtjax.models.t5_family'] = None; import xtjax.models.registry"
  proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode != 0 and "xtjax.models.t5_family" in proc.stderr.splitlines()[-1], proc.stderr[-2000:]


def test_model_registry_table_rejects_a_duplicate_family():
  fam = model_registry.get("encoder")
  with pytest.raises(ValueError, match="model family 'encoder' registered twice"):
    model_registry._table((fam, fam))
  assert sorted(model_registry.families()) == ["decoder", "encoder", "gemma2", "t5"]
