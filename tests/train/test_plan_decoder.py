"""`xtjax plan --memory-only` for decoder-only LLM presets: sharded weights, Adam moments and gradients."""

import importlib.util

import pytest

from xtjax.models import registry
from xtjax.models.init import abstract, count_params
from xtjax.parallel import topology


def test_llama_8b_memory_plan_shards_every_large_tensor_over_fsdp():
  from xtjax.cli.plan_cmd import load_plan_config
  from xtjax.train.plan import plan

  r = plan(load_plan_config(None, ["model.param_dtype=float32"], "llama-3.1-8b"), topology.parse("cpu:8"),
           compile_train=False)
  family, cfg = registry.preset("llama-3.1-8b")
  n = count_params(abstract(family, cfg.for_heads(lm_logits=False))[1])  # the run's heads never read LM logits
  assert r["model"] == "decoder" and r["mesh"] == {"data": 1, "fsdp": 8, "tensor": 1}
  assert n < r["num_params"] < n + 5 * cfg.hidden_size ** 2  # plus the MNLI classification head
  per = r["per_device"]
  replicated = 4 * (2 * cfg.num_layers + 1) * cfg.hidden_size  # f32 RMSNorm scales stay whole on every device
  assert abs(per["params"] - (4 * r["num_params"] - replicated) / 8 - replicated) < 4 * 5 * cfg.hidden_size
  assert per["optimizer_state"] >= 2 * per["params"] and per["total"] == 2 * per["params"] + per["optimizer_state"]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("libtpu") is None, reason="libtpu is not installed (the `tpu` extra)")
def test_llama_70b_does_not_fit_a_small_v4_slice(monkeypatch):
  monkeypatch.setenv("TPU_WORKER_HOSTNAMES", "localhost")
  monkeypatch.setenv("TPU_ACCELERATOR_TYPE", "v4-8")
  monkeypatch.setenv("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")  # another plan may hold libtpu's lock file
  from xtjax.cli.plan_cmd import load_plan_config
  from xtjax.train.plan import plan

  r = plan(load_plan_config(None, [], "llama-3.1-70b"), topology.parse("v4-8"), compile_train=False)
  assert r["fits"] is False and r["per_device"]["total"] > 32 * 2 ** 30


def test_lora_plan_keeps_moments_and_gradients_for_the_adapters_only():
  from xtjax.cli.plan_cmd import load_plan_config
  from xtjax.train.plan import plan

  lora = "lora={targets: ['encoder/layers/\\d+/attention/(q|v)/kernel'], rank: 8}"
  full, low = (plan(load_plan_config(None, ["model.param_dtype=float32"] + extra, "llama-3.2-1b"),
                    topology.parse("cpu:8"), compile_train=False) for extra in ([], [lora]))
  family, cfg = registry.preset("llama-3.2-1b")
  cfg = cfg.for_heads(lm_logits=False)  # tied: nothing left out
  adapters = cfg.num_layers * 8 * (2 * cfg.hidden_size + cfg.num_heads * cfg.head_dim + cfg.num_kv_heads * cfg.head_dim)
  head = full["num_params"] - count_params(abstract(family, cfg)[1])
  assert low["num_params"] == full["num_params"] + adapters and low["trained_params"] == adapters + head
  assert full["trained_params"] == full["num_params"]
  f, lo = full["per_device"], low["per_device"]
  assert lo["optimizer_state"] < f["optimizer_state"] / 50 and lo["gradients"] < f["gradients"] / 50
  assert lo["total"] == lo["params"] + lo["gradients"] + lo["optimizer_state"] < f["total"] / 3
