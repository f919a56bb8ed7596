"""Outside `xtjax/models/`, model configs are read only through `family.ModelConfig`: no `hasattr` /
`getattr` by name, no family config class named, no family-specific field read (the issue-25 seam)."""

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from xtjax.models import registry
from xtjax.models.family import ModelConfig

PACKAGE = Path(__file__).resolve().parents[2] / "xtjax"
CONFIG_CLASSES = {fam.config_cls for fam in registry.families().values()}


def _names(cls) -> set[str]:
  fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
  return fields | {n for n in dir(cls) if not n.startswith("_")}


INTERFACE = _names(ModelConfig) | set(ModelConfig.COMMON_FIELDS)
CONFIG_ATTRS = set().union(*map(_names, CONFIG_CLASSES))
FAMILY_SPECIFIC = CONFIG_ATTRS - INTERFACE  # d_model, encoder_only, pooler, num_kv_heads, ...
CLASS_NAMES = {cls.__name__ for cls in CONFIG_CLASSES}
# Where a model config is held outside models/: cfg, enc, enc_cfg, encoder_config, pre.config, ...
CONFIG_RECEIVER = re.compile(r"^(?!hf)(.*_)?(cfg|config|enc|encoder)$")  # hf_cfg: a transformers config


def _receiver(node) -> str:
  return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""


def probes(root: Path = PACKAGE) -> list[str]:
  found = []
  for path in sorted(root.rglob("*.py")):
    if path.is_relative_to(root / "models"):
      continue
    where = lambda node: f"{path.relative_to(root.parent)}:{node.lineno}"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("hasattr", "getattr")
          and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and node.args[1].value in CONFIG_ATTRS
          and _receiver(node.args[0]) != "args"):
        found.append(f"{where(node)} {node.func.id}(..., {node.args[1].value!r})")
      elif isinstance(node, ast.Name) and node.id in CLASS_NAMES:
        found.append(f"{where(node)} names {node.id}")
      elif isinstance(node, ast.ImportFrom) and any(a.name in CLASS_NAMES for a in node.names):
        found.append(f"{where(node)} imports a family config class")
      elif (isinstance(node, ast.Attribute) and node.attr in FAMILY_SPECIFIC
            and CONFIG_RECEIVER.search(_receiver(node.value))):
        found.append(f"{where(node)} reads .{node.attr}")
  return found


def test_no_module_outside_models_probes_a_model_config():
  found = probes()
  assert not found, f"model configs probed outside xtjax/models/ (declare it on family.ModelConfig): {found}"


def test_the_check_finds_each_kind_of_probe(tmp_path):
  """The rule can fail: each way of telling families apart is reported."""
  pkg = tmp_path / "xtjax"
  (pkg / "models").mkdir(parents=True)
  (pkg / "models" / "ok.py").write_text("x = hasattr(cfg, 'd_model')\n")  # models/ may
  (pkg / "flops.py").write_text("a = hasattr(cfg, 'd_model')\nb = getattr(enc_cfg, 'num_layers', 0)\n"
                                "from xtjax.models.t5 import T5Config\nc = isinstance(cfg, T5Config)\n"
                                "d = pre.config.encoder_only\ne = getattr(args, 'dtype', None)\n")
  found = probes(pkg)
  assert sorted(found) == [
      "xtjax/flops.py:1 hasattr(..., 'd_model')", "xtjax/flops.py:2 getattr(..., 'num_layers')",
      "xtjax/flops.py:3 imports a family config class", "xtjax/flops.py:4 names T5Config",
      "xtjax/flops.py:5 reads .encoder_only"], found


def test_every_family_config_implements_the_interface():
  for fam in registry.families().values():
    registry.check_interface(fam)
    cfg = next(iter(fam.presets.values()))
    assert cfg.kind in ("encoder", "seq2seq", "causal") and cfg.hidden_size > 0 and cfg.num_hidden_states > 1
    assert isinstance(cfg.pad_id, int) and cfg.disk_config().stacked_layers is False


def test_the_registry_refuses_a_config_that_does_not_implement_it():
  @dataclasses.dataclass(frozen=True)
  class Half(ModelConfig):  # no kind, pad_id, stacked_layers, stack_flops
    vocab_size: int = 8
    hidden_size: int = 4

  fam = dataclasses.replace(next(iter(registry.families().values())), name="half", config_cls=Half)
  with pytest.raises(TypeError, match="abstract"):
    registry.check_interface(fam)
