"""The decoder-LLM configs (configs/llm, the decoder sweep) describe runs a decoder can do: every task
has a head defined on causal decoders (or is retrieval), every model is a decoder preset, and the
retrieval layer exists in that model."""

from pathlib import Path

import pytest
from test_configs_parse import shipped_phases

from xtjax.models import registry
from xtjax.models.heads import head_kind
from xtjax.tasks import registry as tasks

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted((ROOT / "configs/llm").glob("[!_]*.yaml")) + [ROOT / "configs/experiments/rq_scale_decoders.yaml"]
# Hugging Face hub id -> xtjax preset of the same architecture and size.
PRESET = {"meta-llama/Llama-3.1-8B": "llama-3.1-8b", "meta-llama/Llama-3.1-70B": "llama-3.1-70b",
          "Qwen/Qwen2.5-7B": "qwen2.5-7b", "Qwen/Qwen2.5-72B": "qwen2.5-72b"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_llm_configs_fit_decoders(path, tmp_path):
  phases = shipped_phases(path, tmp_path)
  assert {"llama31_8b_mnli.yaml": 10, "llama31_70b_mnli.yaml": 10, "rq_scale_decoders.yaml": 60}[path.name] == len(phases)
  for cfg in phases:
    family, preset = registry.preset(PRESET[cfg.model.pretrained])
    assert preset.kind == "causal" and cfg.model.dtype == "bfloat16" and cfg.mesh.fsdp == -1
    for t in cfg.tasks:
      kind = tasks.get(t.name).head_type
      assert kind == "retrieval" or head_kind(kind).causal_module is not None, (path.name, t.name)
      if kind == "retrieval":
        assert 0 < cfg.retrieval_layer <= preset.num_layers
