"""Decoder presets: abstract parameter counts (jax.eval_shape) equal transformers' meta-device counts."""

import pytest

from xtjax.models import decoder_family, registry
from xtjax.models.init import abstract, count_params

# Published sizes of the base checkpoints, as a second reference next to transformers' count.
PUBLISHED = {"llama-3.2-1b": 1_235_814_400, "llama-3.1-8b": 8_030_261_248, "llama-3.1-70b": 70_553_706_496,
             "qwen2.5-7b": 7_615_616_512, "mistral-7b": 7_248_023_552}


def _meta_count(hf_cfg: dict) -> int:
  import torch
  import transformers

  cfg = transformers.AutoConfig.for_model(**hf_cfg)
  with torch.device("meta"):
    model = transformers.AutoModelForCausalLM.from_config(cfg)
  return sum(p.numel() for p in model.parameters())  # a tied head is one parameter


@pytest.mark.parametrize("name", sorted(decoder_family.PRESETS))
def test_preset_parameter_count_equals_transformers(name):
  family, cfg = registry.preset(name)
  ours = count_params(abstract(family, cfg)[1])
  assert ours == _meta_count(family.hf_config_from(cfg))
  if name in PUBLISHED:
    assert ours == PUBLISHED[name]
