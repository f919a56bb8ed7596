"""`attention_impl`: `jax.nn.dot_product_attention` and the Pallas splash kernel (interpret mode on CPU)
give the einsum path's context vectors in f32 for encoder padding, causal grouped-query decoders with
left/right padding, sliding windows and soft-capping; what a kernel cannot run is one line naming why;
"auto" picks per backend and case; whole models agree with the configured impl."""

import dataclasses
import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from xtjax.models.attention import NEG, attention, choose
from xtjax.models.attention_kernels import Call, MaskSpec, pallas_interpret
from xtjax.models.decoder import Decoder, DecoderConfig
from xtjax.models.encoder import Encoder, EncoderConfig
from xtjax.models.gemma2 import Gemma2, Gemma2Config
from xtjax.models.t5 import T5
from xtjax.models.t5_config import T5Config

F32 = jnp.float32
ATOL = 2e-6
# Two rows: left padding (5 pads) and right padding (7 pads); 20 tokens: not a multiple of the kernel's block.
VALID = np.array([[0] * 5 + [1] * 15, [1] * 13 + [0] * 7], bool)


def _rand(*shape, seed=0):
  return jnp.asarray(np.random.default_rng(seed + len(shape)).normal(size=shape), F32)


def _causal(valid, window=0):
  """The decoder's `allowed` mask (causal and valid slots; window in positions over real tokens)."""
  T = valid.shape[1]
  slots = np.arange(T)
  allowed = (slots[None, :] <= slots[:, None])[None] & valid[:, None, :]
  pos = np.maximum(np.cumsum(valid, 1) - 1, 0)
  if window:
    allowed &= pos[:, None, :] > pos[:, :, None] - window
  return jnp.asarray(allowed), jnp.asarray(pos, jnp.int32)


def _impls(impl, **kw):
  """The einsum path's output and `impl`'s (the splash kernel in interpret mode)."""
  ref = attention(**kw)
  with pallas_interpret():
    out = attention(**kw, impl=impl)
  return np.asarray(ref), np.asarray(out)


@pytest.mark.parametrize("impl", ["dot_product", "pallas"])
def test_causal_grouped_queries_with_padding_equal_the_einsum_path(impl):
  B, T, N, G, K = 2, 20, 2, 3, 8
  allowed, _ = _causal(VALID)
  ref, out = _impls(impl, q=_rand(B, T, N, G, K), k=_rand(B, T, N, K, seed=1), v=_rand(B, T, N, K, seed=2),
                    dtype=F32, scale=K ** -0.5, mask=allowed, spec=MaskSpec(jnp.asarray(VALID), causal=True))
  np.testing.assert_allclose(out[VALID], ref[VALID], atol=ATOL)
  assert np.isfinite(out).all()  # padding queries that see no key stay finite (their loss is masked, not NaN)


@pytest.mark.parametrize("impl", ["dot_product", "pallas"])
def test_encoder_padding_bias_and_first_queries_equal_the_einsum_path(impl):
  """BERT's form: scores / sqrt(d) plus an additive padding bias; the last layer may ask for 1 query."""
  B, S, H, K = 2, 20, 4, 8
  valid = np.array([[1] * 20, [1] * 9 + [0] * 11], bool)
  bias = jnp.where(jnp.asarray(valid)[:, None, None, :], 0.0, NEG)
  q = _rand(B, S, H, K)
  for queries in (S, 1):
    ref, out = _impls(impl, q=q[:, :queries], k=_rand(B, S, H, K, seed=1), v=_rand(B, S, H, K, seed=2), dtype=F32,
                      divide_by=np.sqrt(K), bias=bias, spec=MaskSpec(jnp.asarray(valid)))
    np.testing.assert_allclose(out, ref, atol=ATOL)  # every query row: padding queries read the valid keys too


def test_sliding_window_and_soft_cap_equal_the_einsum_path_in_the_splash_kernel():
  """Gemma 2's local layer: soft-capped scores and a window of 6 (the kernel skips blocks outside it)."""
  B, T, N, G, K = 2, 20, 2, 2, 8
  allowed, pos = _causal(VALID)
  ref, out = _impls("pallas", q=_rand(B, T, N, G, K), k=_rand(B, T, N, K, seed=1), v=_rand(B, T, N, K, seed=2),
                    dtype=F32, scale=0.5, mask=allowed, softcap=2.0, sliding_window=6, query_positions=pos,
                    key_positions=pos, spec=MaskSpec(jnp.asarray(VALID), causal=True))
  np.testing.assert_allclose(out[VALID], ref[VALID], atol=ATOL)
  windowless = np.asarray(attention(q=_rand(B, T, N, G, K), k=_rand(B, T, N, K, seed=1), v=_rand(B, T, N, K, seed=2),
                                    dtype=F32, scale=0.5, mask=allowed, softcap=2.0))
  assert np.abs(windowless - ref)[VALID].max() > 1e-3  # the window matters at this length


def test_dot_product_takes_a_sliding_window_and_t5_bias():
  B, T, N, G, K = 2, 20, 2, 2, 8
  allowed, pos = _causal(VALID)
  ref, out = _impls("dot_product", q=_rand(B, T, N, G, K), k=_rand(B, T, N, K, seed=1), v=_rand(B, T, N, K, seed=2),
                    dtype=F32, scale=0.5, mask=allowed, sliding_window=6, query_positions=pos, key_positions=pos)
  np.testing.assert_allclose(out[VALID], ref[VALID], atol=ATOL)
  bias = _rand(1, 4, T, T, seed=3) + jnp.where(jnp.asarray(VALID)[:, None, None, :], 0.0, NEG)
  ref, out = _impls("dot_product", q=_rand(B, T, 4, K), k=_rand(B, T, 4, K, seed=1), v=_rand(B, T, 4, K, seed=2),
                    dtype=F32, bias=bias)
  np.testing.assert_allclose(out, ref, atol=ATOL)


def test_splash_gradients_equal_the_einsum_path():
  """The kernel's own backward pass (what training runs): d/dq, d/dk, d/dv over the valid rows."""
  B, T, N, G, K = 2, 20, 2, 2, 8
  allowed, _ = _causal(VALID)
  spec = MaskSpec(jnp.asarray(VALID), causal=True)
  weights = _rand(B, T, N, G, K, seed=7) * jnp.asarray(VALID)[:, :, None, None, None]

  def loss(impl, q, k, v):
    return (attention(q, k, v, dtype=F32, scale=K ** -0.5, mask=allowed, impl=impl, spec=spec) * weights).sum()

  args = (_rand(B, T, N, G, K), _rand(B, T, N, K, seed=1), _rand(B, T, N, K, seed=2))
  ref = jax.grad(lambda *a: loss("xla", *a), argnums=(0, 1, 2))(*args)
  with pallas_interpret():
    out = jax.grad(lambda *a: loss("pallas", *a), argnums=(0, 1, 2))(*args)
  for r, o in zip(ref, out):
    np.testing.assert_allclose(np.asarray(o), np.asarray(r), atol=1e-5)


def _call(**kw):
  q, k = kw.pop("q", _rand(2, 16, 4, 8)), _rand(2, 16, 4, 8)
  fields = dict(q=q, k=k, v=k, dtype=jnp.dtype(kw.pop("dtype", F32)), scale=1.0, bias=None, mask=None, softcap=0.0,
                dropout=False, spec=None)
  return Call(**{**fields, **kw})


def test_what_a_kernel_cannot_run_is_one_line_naming_why():
  valid = jnp.ones((2, 16), bool)
  cases = [("dot_product", dict(softcap=50.0), "soft-capped scores (Gemma 2)"),
           ("dot_product", dict(dropout=True), "attention dropout is on"),
           ("pallas", dict(bias=jnp.zeros((1, 4, 16, 16))), "T5's relative position bias"),
           ("pallas", dict(mask=jnp.ones((2, 16, 16), bool)), "KV-cache decoding"),
           ("pallas", dict(dropout=True, spec=MaskSpec(valid)), "attention dropout is on")]
  for impl, kw, why in cases:
    with pallas_interpret(), pytest.raises(ValueError, match=f"^attention_impl '{impl}' cannot run this attention: "
                                                             ".*" + why.replace("(", r"\(").replace(")", r"\)")) as e:
      choose(impl, _call(**kw))
    assert "\n" not in str(e.value)
  with pytest.raises(ValueError, match=r"the Pallas TPU kernel needs a TPU \(the backend is cpu\)"):
    choose("pallas", _call(spec=MaskSpec(valid)))  # no interpret mode: CPU cannot compile it
  with pytest.raises(ValueError, match="cuDNN flash attention takes bfloat16 or float16, the model computes in float32"):
    choose("dot_product", _call(), backend="gpu")
  with pytest.raises(ValueError, match=r"attention_impl must be one of \['xla', 'dot_product', 'pallas', 'auto'\]"):
    EncoderConfig(vocab_size=10, attention_impl="flash")


def test_auto_picks_the_fused_kernel_of_the_backend_where_the_case_allows():
  causal = _call(spec=MaskSpec(jnp.ones((2, 16), bool), causal=True))
  assert choose("auto", causal, "cpu") == "xla"
  assert choose("auto", causal, "tpu") == "pallas"
  assert choose("auto", causal._replace(dropout=True), "tpu") == "xla"
  assert choose("auto", _call(bias=jnp.zeros((1, 4, 16, 16))), "tpu") == "xla"  # T5: the einsum path
  assert choose("auto", causal, "gpu") == "xla"  # float32: cuDNN does not take it
  assert choose("auto", causal._replace(dtype=jnp.dtype(jnp.bfloat16)), "gpu") == "dot_product"
  assert choose("auto", causal._replace(dtype=jnp.dtype(jnp.bfloat16), softcap=50.0), "gpu") == "xla"


IDS = jnp.asarray(np.random.default_rng(0).integers(3, 90, size=VALID.shape), jnp.int32)
MASK = jnp.asarray(VALID, jnp.int32)


def _model(cls, cfg, impl, out=lambda o: o.logits, **kw):
  model = cls(dataclasses.replace(cfg, attention_impl=impl), nnx.Rngs(0))
  with pallas_interpret():
    return np.asarray(out(model(IDS, MASK, **kw)))


def test_encoder_and_decoder_models_follow_their_attention_impl():
  """Whole models in f32, dropout off: the configured kernel gives the einsum path's outputs."""
  enc = EncoderConfig(vocab_size=100, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, dropout_rate=0.0,
                      attention_dropout_rate=0.0)
  hidden = lambda o: o.last_hidden_state
  ref = _model(Encoder, enc, "xla", hidden)
  for impl in ("dot_product", "pallas"):
    np.testing.assert_allclose(_model(Encoder, enc, impl, hidden)[VALID], ref[VALID], atol=1e-5)
  # Mistral's form: grouped queries and a sliding window of 6 over 20 tokens.
  dec = DecoderConfig(vocab_size=100, hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=64,
                      sliding_window=6, max_position_embeddings=64)
  ref = _model(Decoder, dec, "xla")
  for impl in ("dot_product", "pallas"):
    np.testing.assert_allclose(_model(Decoder, dec, impl)[VALID], ref[VALID], atol=1e-5)


def test_gemma2_runs_the_splash_kernel_and_dot_product_says_why_not():
  cfg = Gemma2Config(vocab_size=100, hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=8,
                     intermediate_size=64, sliding_window=6, query_pre_attn_scalar=8, max_position_embeddings=64)
  np.testing.assert_allclose(_model(Gemma2, cfg, "pallas")[VALID], _model(Gemma2, cfg, "xla")[VALID], atol=1e-5)
  with pytest.raises(ValueError, match="^attention_impl 'dot_product' cannot run this attention: soft-capped"):
    _model(Gemma2, cfg, "dot_product")


def test_t5_runs_dot_product_with_its_position_bias_and_pallas_says_why_not():
  cfg = T5Config(vocab_size=100, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
                 dropout_rate=0.0)
  targets = IDS[:, :6]
  logits = {impl: _model(T5, cfg, impl, lambda o: o, decoder_input_ids_BxT=targets) for impl in ("xla", "dot_product")}
  np.testing.assert_allclose(logits["dot_product"], logits["xla"], atol=1e-5)
  with pytest.raises(ValueError, match="^attention_impl 'pallas' cannot run this attention: an additive score bias"):
    _model(T5, cfg, "pallas", lambda o: o, decoder_input_ids_BxT=targets)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("libtpu") is None, reason="libtpu is not installed (the `tpu` extra)")
def test_splash_kernel_compiles_for_a_v4_slice_and_cuts_the_temporaries_at_1024_tokens(monkeypatch):
  """`xtjax plan`'s train-step compile (libtpu, v4-8, bf16, batch 8 x 1024, a 2-layer GQA decoder):
  the kernel runs per shard and never holds the [B, H, T, T] scores (measured: 46.6 MB -> 9.7 MB)."""
  monkeypatch.setenv("TPU_WORKER_HOSTNAMES", "localhost")
  monkeypatch.setenv("TPU_ACCELERATOR_TYPE", "v4-8")
  monkeypatch.setenv("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")  # another plan may hold libtpu's lock file
  from xtjax.cli.plan_cmd import load_plan_config
  from xtjax.parallel import topology
  from xtjax.train.plan import plan

  def temporaries(impl):
    model = ("model.config_overrides={num_layers: 2, hidden_size: 512, num_heads: 4, num_kv_heads: 2, head_dim: 128, "
             f"intermediate_size: 1024, vocab_size: 256, max_position_embeddings: 4096, attention_impl: {impl}}}")
    cfg = load_plan_config(None, [model, "features.max_length=1024", "batch_size=8", "model.dtype=bfloat16"],
                           "llama-3.2-1b")
    return plan(cfg, topology.parse("v4-8"), compile_eval=False)["programs"][0]["temp_bytes"]

  xla, pallas = temporaries("xla"), temporaries("pallas")
  scores = 8 // 4 * 4 * 1024 * 1024 * 4  # one layer's f32 scores per device (batch 8 over 4 chips, 4 heads)
  assert pallas < xla - scores, (xla, pallas)
