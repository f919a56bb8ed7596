"""Remat policies do what they are for, read off the compiled XLA:CPU program of a tiny stacked (scanned)
bf16 decoder's and encoder's gradient step (the train step less the optimizer, which every policy shares):
a policy that keeps every weight product recomputes none of them (its optimized HLO has `none`'s
activation x weight dots, XLA's FLOPs within a few percent of `none`, below `full`) and keeps fewer
temporaries than `none`; `full` keeps the fewest; the ones keeping a subset lie between; every policy gives
`none`'s loss and gradients. The names the policies select are there in every family.

Before the names (`dots_saveable` over the custom-VJP einsum) the decoder's `dots_saveable` compiled to
33 dots against `none`'s 27 and 85% of `full`'s extra FLOPs: `full` in disguise."""

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from xtjax.models import remat
from xtjax.models.decoder import Decoder, DecoderConfig
from xtjax.models.encoder import Encoder, EncoderConfig
from xtjax.models.gemma2 import Gemma2, Gemma2Config
from xtjax.models.t5 import T5, T5Config

DEC = DecoderConfig(vocab_size=64, hidden_size=64, num_layers=4, num_heads=4, num_kv_heads=2, intermediate_size=128,
                    max_position_embeddings=64, scan_layers=True, dtype="bfloat16")
# Few tokens against a wide layer, so the attention scores and norms a policy reruns are a small share.
ENC = EncoderConfig(vocab_size=64, hidden_size=128, num_layers=4, num_heads=2, intermediate_size=256,
                    max_position_embeddings=64, scan_layers=True, dtype="bfloat16")
IDS = jnp.asarray(np.random.default_rng(0).integers(0, 64, (4, 32)), jnp.int32)
ENC_IDS = jnp.asarray(np.random.default_rng(1).integers(0, 64, (8, 16)), jnp.int32)
# Keep every weight product: no matmul recomputed (only the attention scores and element-wise work).
SAVE_ALL_DOTS = ("dots_saveable", "dots_with_no_batch_dims_saveable", "minimal", "minimal_with_context")
SAVE_SOME = ("save_dot_with_context_except_mlp", "save_dot_except_mlp", "save_qkv_proj", "save_out_proj")
OFFLOAD = tuple(n for n, p in remat.POLICIES.items() if p.offloads)  # XLA:CPU has no host memory space: equality only
MODELS = {
    "decoder": (Decoder, DEC, lambda m: m(IDS, with_logits=False).last_hidden_state,
                ("none", "full") + SAVE_ALL_DOTS + SAVE_SOME + OFFLOAD),
    "encoder": (Encoder, ENC, lambda m: m(ENC_IDS, jnp.ones_like(ENC_IDS)).last_hidden_state,
                ("none", "full", "dots_saveable", "minimal", "minimal_with_context", "save_qkv_proj")),
}


def _grad_fn(model: str, remat_name: str):
  cls, cfg, run, _ = MODELS[model]
  graphdef, state = nnx.split(cls(dataclasses.replace(cfg, remat=remat_name), nnx.Rngs(0)))

  def loss(st):
    return jnp.mean(jnp.sin(run(nnx.merge(graphdef, st)).astype(jnp.float32)))

  return jax.jit(jax.value_and_grad(loss)), state


def _weight_dots(hlo: str) -> int:
  """Dots of the optimized HLO without batch dimensions: the activation x weight products and their
  gradients (attention's score and context products are batched over batch and heads)."""
  return sum(1 for line in hlo.splitlines() if re.search(r"\bdot\(", line) and "lhs_batch_dims" not in line)


@pytest.fixture(scope="module", params=sorted(MODELS))
def compiled(request):
  out = {}
  for name in MODELS[request.param][3]:
    fn, state = _grad_fn(request.param, name)
    c = fn.lower(state).compile()
    cost = c.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost  # a list of one dict on older jax
    out[name] = {"flops": cost["flops"], "temp": c.memory_analysis().temp_size_in_bytes,
                 "weight_dots": _weight_dots(c.as_text()), "result": c(state)}
  return out


def _policies(compiled, names):
  return [n for n in names if n in compiled]


@pytest.mark.slow
def test_full_recomputes_the_matmuls_and_keeps_the_fewest_temporaries(compiled):
  none, full = compiled["none"], compiled["full"]
  assert full["weight_dots"] > none["weight_dots"] and full["flops"] > none["flops"]
  assert full["temp"] < none["temp"]
  assert all(full["temp"] <= compiled[n]["temp"] for n in _policies(compiled, SAVE_ALL_DOTS + SAVE_SOME))


@pytest.mark.slow
def test_a_policy_saving_the_weight_products_recomputes_no_matmul_and_saves_memory(compiled):
  none, full = compiled["none"], compiled["full"]
  for name in _policies(compiled, SAVE_ALL_DOTS):
    r = compiled[name]
    assert r["weight_dots"] == none["weight_dots"], f"{name} recomputes weight products"
    assert r["flops"] < full["flops"]
    recomputed = (r["flops"] - none["flops"]) / (full["flops"] - none["flops"])
    assert recomputed < 0.1, f"{name} recomputes {recomputed:.0%} of what `full` does"
    assert r["temp"] < none["temp"], name


@pytest.mark.slow
def test_a_policy_saving_some_projections_lies_between_none_and_full(compiled):
  none, full = compiled["none"], compiled["full"]
  for name in _policies(compiled, SAVE_SOME):
    r = compiled[name]
    assert none["weight_dots"] < r["weight_dots"] < full["weight_dots"], name
    assert none["flops"] < r["flops"] < full["flops"], name
    assert full["temp"] <= r["temp"] < none["temp"], name


@pytest.mark.slow
def test_the_context_costs_memory_and_spares_its_recomputation(compiled):
  assert compiled["minimal_with_context"]["temp"] > compiled["minimal"]["temp"]
  assert compiled["minimal_with_context"]["flops"] < compiled["minimal"]["flops"]
  if "save_dot_except_mlp" in compiled:
    assert compiled["save_dot_with_context_except_mlp"]["flops"] < compiled["save_dot_except_mlp"]["flops"]


@pytest.mark.slow
def test_every_policy_gives_the_loss_and_gradients_of_none(compiled):
  ref_value, ref_grads = compiled["none"]["result"]
  for name in _policies(compiled, ("full",) + SAVE_ALL_DOTS + SAVE_SOME + OFFLOAD):
    value, grads = compiled[name]["result"]
    np.testing.assert_allclose(value, ref_value, rtol=1e-6, err_msg=name)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):  # bf16 compute: 1e-2 of the largest
      np.testing.assert_allclose(a, b, rtol=2e-2, atol=1e-2 * float(np.abs(b).max()), err_msg=name)


def _names(fn, *args) -> set[str]:
  """The `checkpoint_name` labels in the jaxpr of `fn`, sub-jaxprs (the layer scan, remat) included."""
  from jax.extend.core import ClosedJaxpr, Jaxpr

  found = set()

  def walk(jaxpr):
    for eqn in jaxpr.eqns:
      if eqn.primitive.name == "name":
        found.add(eqn.params["name"])
      for v in eqn.params.values():
        for j in v if isinstance(v, (tuple, list)) else (v,):
          if isinstance(j, (ClosedJaxpr, Jaxpr)):
            walk(j.jaxpr if isinstance(j, ClosedJaxpr) else j)

  walk(jax.make_jaxpr(fn)(*args).jaxpr)
  return found


FAMILIES = {
    "decoder": (Decoder, dataclasses.replace(DEC, num_layers=2), lambda m: m(IDS).logits,
                set(remat.QKV) | {remat.OUT, remat.CONTEXT, remat.MLP_IN_0, remat.MLP_IN_1, remat.MLP_OUT}),
    "encoder": (Encoder, EncoderConfig(vocab_size=64, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32,
                                       max_position_embeddings=40, dtype="bfloat16"),
                lambda m: m(IDS, jnp.ones_like(IDS)).last_hidden_state,
                set(remat.QKV) | {remat.OUT, remat.CONTEXT, remat.MLP_IN, remat.MLP_OUT}),
    "t5": (T5, T5Config(vocab_size=64, d_model=16, d_kv=4, d_ff=24, num_layers=2, num_decoder_layers=2, num_heads=2,
                        dtype="bfloat16"), lambda m: m(IDS, jnp.ones_like(IDS), IDS[:, :5]),
           set(remat.QKV) | {remat.OUT, remat.CONTEXT, remat.MLP_IN_0, remat.MLP_IN_1, remat.MLP_OUT}),
    "gemma2": (Gemma2, Gemma2Config(vocab_size=64, hidden_size=16, num_layers=2, num_heads=2, num_kv_heads=1,
                                    head_dim=8, intermediate_size=32, max_position_embeddings=64, sliding_window=4,
                                    query_pre_attn_scalar=8, dtype="bfloat16"), lambda m: m(IDS).logits,
               set(remat.QKV) | {remat.OUT, remat.CONTEXT, remat.MLP_IN_0, remat.MLP_IN_1, remat.MLP_OUT}),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_names_the_activations_the_policies_select(family):
  cls, cfg, run, expected = FAMILIES[family]
  graphdef, state = nnx.split(cls(cfg, nnx.Rngs(0)))
  names = _names(lambda st: run(nnx.merge(graphdef, st)), state)
  assert expected | {remat.WEIGHT_DOT} <= names


def test_policy_names_are_checked():
  assert set(remat.REMAT_CHOICES) >= {"none", "full", "minimal", "minimal_with_context", "save_qkv_proj",
                                      "save_out_proj", "offload"}
  with pytest.raises(ValueError, match="remat must be one of"):
    dataclasses.replace(DEC, remat="minimal_with_contxt")
