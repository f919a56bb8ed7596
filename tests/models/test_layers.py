"""The mixed-precision einsum: its hand-written backward equals autodiff, bf16 tracks f32."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xtjax.models import layers as L

# Every spec the models use (encoder, T5, heads, Dense).
SPECS = {
    "...i,io->...o": ((2, 3, 8), (8, 5)),
    "bld,dhk->blhk": ((2, 3, 8), (8, 2, 4)),
    "bqhk,bshk->bhqs": ((2, 3, 2, 4), (2, 5, 2, 4)),
    "bhqs,bshk->bqhk": ((2, 2, 3, 5), (2, 5, 2, 4)),
    "bqhk,hkd->bqd": ((2, 3, 2, 4), (2, 4, 8)),
    "bld,vd->blv": ((2, 3, 8), (11, 8)),
    "btd,dv->btv": ((2, 3, 8), (8, 11)),
    "...d,df->...f": ((2, 3, 8), (8, 6)),
}


@pytest.mark.parametrize("spec", sorted(SPECS))
def test_custom_backward_equals_autodiff(spec):
  sa, sb = SPECS[spec]
  ka, kb, kg = jax.random.split(jax.random.key(0), 3)
  a, b = jax.random.normal(ka, sa), jax.random.normal(kb, sb)
  w = jax.random.normal(kg, jnp.einsum(spec, a, b).shape)

  def ours(a, b):  # the custom-vjp path, run in f32 so it must match autodiff to rounding
    return (L._lowp_einsum(spec, a, b, jnp.float32) * w).sum()

  def ref(a, b):
    return (jnp.einsum(spec, a, b) * w).sum()

  for g, r in zip(jax.grad(ours, (0, 1))(a, b), jax.grad(ref, (0, 1))(a, b)):
    np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=1e-5, atol=1e-5)


def test_bf16_forward_and_grads_track_f32():
  ka, kb = jax.random.split(jax.random.key(1))
  a, b = jax.random.normal(ka, (4, 16, 64)), jax.random.normal(kb, (64, 32))

  def loss(a, b, dt):
    return (L.einsum("...i,io->...o", a, b, dt).astype(jnp.float32) ** 2).mean()

  y16 = L.einsum("...i,io->...o", a, b, jnp.bfloat16)
  assert y16.dtype == jnp.bfloat16
  assert L.einsum("...i,io->...o", a, b, jnp.bfloat16, jnp.float32).dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(y16, np.float32), np.asarray(a @ b), rtol=0.02, atol=0.1)
  g32 = jax.grad(loss, (0, 1))(a, b, jnp.float32)
  g16 = jax.grad(loss, (0, 1))(a, b, jnp.bfloat16)
  for x, y in zip(g16, g32):
    assert x.dtype == jnp.float32  # gradients reach f32 master weights in f32
    rel = np.linalg.norm(np.asarray(x) - np.asarray(y)) / np.linalg.norm(np.asarray(y))
    assert rel < 0.02
