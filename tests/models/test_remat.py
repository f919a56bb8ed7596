"""Remat policies do what they are for: compiled for a tiny stacked bf16 decoder's gradient on XLA:CPU, a
policy that keeps every matmul output recomputes none of them (XLA's FLOPs those of `none`, fewer than
`full`) and keeps fewer temporaries than `none`; the ones keeping a subset lie between; every policy
gives `none`'s loss and gradients. The names the policies select are there in every family."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from xtjax.models import remat
from xtjax.models.decoder import Decoder, DecoderConfig
from xtjax.models.encoder import Encoder, EncoderConfig
from xtjax.models.t5 import T5, T5Config

DEC = DecoderConfig(vocab_size=64, hidden_size=64, num_layers=4, num_heads=4, num_kv_heads=2, intermediate_size=128,
                    max_position_embeddings=64, scan_layers=True, dtype="bfloat16")
IDS = jnp.asarray(np.random.default_rng(0).integers(0, 64, (4, 32)), jnp.int32)
# Keep every weight product: no matmul recomputed (only the attention scores, ~T/6D of a layer's FLOPs).
SAVE_ALL_DOTS = ("dots_saveable", "dots_with_no_batch_dims_saveable", "minimal", "minimal_with_context")
SAVE_SOME = ("save_dot_with_context_except_mlp", "save_dot_except_mlp", "save_qkv_proj", "save_out_proj")


def _grad_fn(remat_name: str):
  graphdef, state = nnx.split(Decoder(dataclasses.replace(DEC, remat=remat_name), nnx.Rngs(0)))

  def loss(st):
    out = nnx.merge(graphdef, st)(IDS, with_logits=False).last_hidden_state
    return jnp.mean(jnp.sin(out.astype(jnp.float32)))

  return jax.jit(jax.value_and_grad(loss)), state


@pytest.fixture(scope="module")
def compiled():
  out = {}
  for name in ("none", "full") + SAVE_ALL_DOTS + SAVE_SOME:
    fn, state = _grad_fn(name)
    c = fn.lower(state).compile()
    out[name] = {"flops": c.cost_analysis()["flops"], "temp": c.memory_analysis().temp_size_in_bytes,
                 "result": c(state)}
  return out


@pytest.mark.slow
@pytest.mark.parametrize("name", SAVE_ALL_DOTS)
def test_a_policy_saving_the_weight_products_recomputes_no_matmul_and_saves_memory(compiled, name):
  none, full, r = compiled["none"], compiled["full"], compiled[name]
  assert r["flops"] < full["flops"]
  recomputed = (r["flops"] - none["flops"]) / (full["flops"] - none["flops"])
  assert recomputed < 0.05, f"{name} recomputes {recomputed:.0%} of what `full` does"
  assert r["temp"] < none["temp"]


@pytest.mark.slow
@pytest.mark.parametrize("name", SAVE_SOME)
def test_a_policy_saving_some_projections_lies_between_none_and_full(compiled, name):
  none, full, r = compiled["none"], compiled["full"], compiled[name]
  assert none["flops"] < r["flops"] < full["flops"]
  assert full["temp"] <= r["temp"] < none["temp"]


@pytest.mark.slow
def test_the_context_costs_memory_and_spares_its_recomputation(compiled):
  assert compiled["minimal_with_context"]["temp"] > compiled["minimal"]["temp"]
  assert compiled["save_dot_with_context_except_mlp"]["flops"] < compiled["save_dot_except_mlp"]["flops"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ("full",) + SAVE_ALL_DOTS + SAVE_SOME)
def test_every_policy_gives_the_loss_and_gradients_of_none(compiled, name):
  (value, grads), (ref_value, ref_grads) = compiled[name]["result"], compiled["none"]["result"]
  np.testing.assert_allclose(value, ref_value, rtol=1e-6)
  for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):  # bf16 compute: 1e-2 of the largest
    np.testing.assert_allclose(a, b, rtol=2e-2, atol=1e-2 * float(np.abs(b).max()))


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
