"""The rules table is strict: unknown names and axes are errors naming the parameter; indivisible
dimensions are replicated and logged once with the parameter paths and why."""

import dataclasses
import logging

import pytest
from jax.sharding import PartitionSpec as P

from xtjax.errors import ConfigError
from xtjax.models import init as model_init
from xtjax.models import registry
from xtjax.parallel.mesh import MeshConfig, make_mesh
from xtjax.parallel import rules as rules_mod
from xtjax.parallel.rules import DEFAULT_RULES, logical_to_spec, rules_from_config, state_shardings


def _xlmr_vocab_abstract():
  fam, cfg = registry.preset("xlmr-bench-small")
  return model_init.abstract(fam, dataclasses.replace(cfg, vocab_size=250002, num_layers=1))[1]


def test_indivisible_vocab_is_replicated_and_logged_once(caplog, monkeypatch):
  monkeypatch.setattr(rules_mod, "_REPORTED", set())  # what earlier tests logged
  state, mesh = _xlmr_vocab_abstract(), make_mesh(MeshConfig(1, 2, 4))
  with caplog.at_level(logging.WARNING, logger="xtjax.parallel.rules"):
    shardings = state_shardings(state, mesh)
    state_shardings(state, mesh)
  assert shardings["embeddings"]["word"].get_value().spec == P(None, "fsdp")
  assert shardings["layers"][0]["attention"]["query"].get_value().spec == P("fsdp", "tensor")
  warnings = [r.getMessage() for r in caplog.records if r.name == "xtjax.parallel.rules"]
  assert len(warnings) == 1, warnings
  assert "embeddings/word dim 0 (vocab=250002) is not divisible by tensor=4" in warnings[0]


def test_unknown_logical_name_names_the_parameter():
  state, mesh = _xlmr_vocab_abstract(), make_mesh(MeshConfig(1, 2, 4))
  rules = tuple(r for r in DEFAULT_RULES if r[0] != "mlp")
  with pytest.raises(ConfigError, match=r"layers/0/\w+/\w+: logical axis name 'mlp' has no rule"):
    state_shardings(state, mesh, rules)
  with pytest.raises(ConfigError, match="array: logical axis name 'vocabulary' has no rule"):
    logical_to_spec(("vocabulary", "embed"))


def test_unknown_mesh_axis_names_the_parameter():
  state, mesh = _xlmr_vocab_abstract(), make_mesh(MeshConfig(1, 2, 4))
  rules = tuple((n, "model" if n == "vocab" else a) for n, a in DEFAULT_RULES)
  with pytest.raises(ConfigError, match=r"embeddings/word: rule 'vocab' -> 'model' names no mesh axis"):
    state_shardings(state, mesh, rules)


def test_config_rules_are_checked_by_key():
  assert rules_from_config(None) == DEFAULT_RULES
  assert rules_from_config([["batch", ["data", "fsdp"]], ["vocab", None]]) == (("batch", ("data", "fsdp")), ("vocab", None))
  with pytest.raises(ConfigError, match=r"rules\[1\]: unknown logical axis name 'vocb'"):
    rules_from_config([["batch", "data"], ["vocb", "tensor"]])
  with pytest.raises(ConfigError, match=r"rules\[1\]: logical axis name 'batch' has two rules"):
    rules_from_config([["batch", "data"], ["batch", "fsdp"]])
  with pytest.raises(ConfigError, match=r"rules\[0\]: expected \[logical_name, mesh_axes\]"):
    rules_from_config([["batch"]])
