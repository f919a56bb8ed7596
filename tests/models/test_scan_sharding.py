"""A scanned layer stack compiled for a real (described) TPU slice keeps FSDP's layout: activations split over
the batch, one layer's weights gathered per scan step. Without the constraints of `parallel.rules.constrain`,
XLA's propagation follows the weights' `embed` -> `fsdp` split into the loop and every layer's activations
are kept for the whole global batch (xlmr-large, 24 layers: 4.7 instead of 2.4 GiB of temporaries on v4-8)."""

import importlib.util
import re

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from xtjax.models.encoder import Encoder, EncoderConfig
from xtjax.parallel import topology
from xtjax.parallel.batching import batch_sharding
from xtjax.parallel.mesh import MeshConfig, make_mesh
from xtjax.parallel.rules import (
  DEFAULT_RULES,
  state_shardings,
  traced_with_activation_sharding,
)

BATCH, LENGTH, HIDDEN, LAYERS = 24, 32, 64, 4  # distinct sizes, so the HLO's shapes say which dim is which
FSDP = 4


@pytest.fixture(scope="module")
def stacked_grad_hlo(monkeypatch_module):
  """Optimized HLO of the gradient of a tiny stacked bf16 encoder on v4:2x2x1 (fsdp=4)."""
  devices = topology.devices(topology.parse("v4:2x2x1"))
  cfg = EncoderConfig(vocab_size=64, hidden_size=HIDDEN, num_layers=LAYERS, num_heads=4, intermediate_size=256,
                      max_position_embeddings=40, scan_layers=True, dtype="bfloat16", pooler=False)
  mesh = make_mesh(MeshConfig(data=1, fsdp=FSDP, tensor=1), devices=devices)
  graphdef, state = nnx.split(nnx.eval_shape(lambda: Encoder(cfg, nnx.Rngs(0))))
  shardings = state_shardings(state, mesh)

  def loss(st, ids):
    return jnp.sum(nnx.merge(graphdef, st)(ids).last_hidden_state.astype(jnp.float32) ** 2)

  ids_sh = batch_sharding(mesh, DEFAULT_RULES, (BATCH, LENGTH))
  ids = jax.ShapeDtypeStruct((BATCH, LENGTH), jnp.int32, sharding=ids_sh)
  step = jax.jit(traced_with_activation_sharding(jax.grad(loss), mesh), in_shardings=(shardings, ids_sh),
                 out_shardings=shardings)
  return step.lower(state, ids).compile().as_text()


@pytest.fixture(scope="module")
def monkeypatch_module():
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv("TPU_WORKER_HOSTNAMES", "localhost")
    mp.setenv("TPU_ACCELERATOR_TYPE", "v4-8")
    mp.setenv("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")  # another compile may hold libtpu's lock file
    yield mp


pytestmark = pytest.mark.skipif(importlib.util.find_spec("libtpu") is None,
                                reason="libtpu is not installed (the `tpu` extra)")


def test_the_layer_loop_stays_a_while_loop(stacked_grad_hlo):
  assert re.search(r"\bwhile\(", stacked_grad_hlo)


def test_scanned_activations_are_split_over_the_batch(stacked_grad_hlo):
  """The forward pass saves [layers-1, batch/fsdp, length, ...] for the backward pass, never the global batch."""
  scanned = LAYERS - 1  # the last layer runs apart (`Encoder.__call__`)
  assert not re.search(rf"\[{scanned},{BATCH},{LENGTH},", stacked_grad_hlo)
  assert re.search(rf"\[{scanned},{BATCH // FSDP},{LENGTH},", stacked_grad_hlo)


def test_weights_are_gathered_one_layer_at_a_time(stacked_grad_hlo):
  gathered = re.findall(r"= (\w+\[[\d,]*\])\S* all-gather(?:-start)?\(", stacked_grad_hlo)
  per_layer = [s for s in gathered if re.fullmatch(rf"bf16\[1,(?:{HIDDEN},[\d,]+|[\d,]+,{HIDDEN})\]", s)]
  assert per_layer, gathered
  whole_stack = rf"\w+\[(?:{LAYERS}|{LAYERS - 1}),(?:[\d,]*,)?{HIDDEN}(?:,[\d,]*)?\]"
  assert not [s for s in gathered if re.fullmatch(whole_stack, s)], gathered
