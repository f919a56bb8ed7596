"""Analytic model FLOPs per step, and the device peak that MFU is measured against.

The model's part comes from its config (`ModelConfig.stack_flops`, `text_to_text_flops`,
`generate_flops`: each family counts its own layers); heads and the backward pass are added here.

Counting convention (as in the PaLM / Megatron MFU papers): a matmul [m, k] @ [k, n] costs
2*m*n*k FLOPs; attention adds QK^T and PV (2*Q*S*H*K each per sequence); embedding lookups,
normalisation, activations, softmax and the optimizer update count as free. Training costs 3x the
forward pass (the backward pass is two matmuls per forward matmul: input and weight gradients).

Encoder layer (BERT / XLM-R), L tokens, width D, FFN F, per sequence:
  Q, K, V, output projections 4 * 2*L*D*D;  QK^T and PV 2 * 2*L*L*D;  FFN 2 * 2*L*D*F.
With a classification or multiple-choice head the last layer computes the first token only
(K, V over L tokens; Q, O, attention rows and FFN over 1): what is counted is what is computed.
T5 layer with inner width I = heads * d_kv: projections 4 * 2*L*D*I; attention 4*L*L*I; FFN
(2 or 3 matrices when gated) * 2*L*D*F; decoder layers add cross-attention (Q, O on the target,
K, V on the source, 4*T*S*I for scores) and the LM head 2*T*D*V.
Decoder-only layer (Llama family) with query width Q = heads * head_dim and key/value width
KV = kv_heads * head_dim, T tokens attending to S keys: Q, O projections 2 * 2*T*D*Q; K, V
2 * 2*T*D*KV; scores and PV 2 * 2*T*S*Q (the causal mask's zeros count: they are computed);
SwiGLU 3 * 2*T*D*F.
"""

from __future__ import annotations

import functools
import time

from xtjax.models.heads import head_kind

# Vendor dense bf16 peak FLOP/s per chip (per device as JAX sees it).
PEAK_BF16 = (
    ("TPU v4", 275e12),
    ("TPU v5 lite", 197e12),
    ("TPU v5e", 197e12),
    ("TPU v5p", 459e12),
    ("TPU v5", 459e12),  # v5p reports device_kind "TPU v5"
    ("TPU v6 lite", 918e12),
    ("TPU v6e", 918e12),
    ("H100", 989e12),  # SXM, dense (no sparsity)
    ("H200", 989e12),
)


def head_flops(head_type: str | None, hidden: int, seq_len: int, num_labels: int = 2, vocab_size: int = 0,
               choices: int = 1) -> int:
  """Forward FLOPs of one head per example (multiple choice: per example of `choices` sequences)."""
  D, L = hidden, seq_len
  if head_type is None:
    return 0
  if head_type == "classification":
    return 2 * D * D + 2 * D * num_labels
  if head_type == "multiple_choice":
    return choices * (2 * D * D + 2 * D)
  if head_type == "span":
    return 2 * L * D * 2
  if head_type == "tagging":
    return 2 * L * D * num_labels
  if head_type == "mlm":
    return 2 * L * D * D + 2 * L * D * vocab_size
  raise ValueError(f"unknown head type {head_type!r}")


def encoder_forward_flops(cfg, seq_len: int, head_type: str | None = None, num_labels: int = 2,
                          choices: int = 1) -> int:
  """Forward FLOPs per example of a model's stack (`ModelConfig.stack_flops`) plus an optional head."""
  first_only = head_type is not None and head_kind(head_type).first_token_only
  per_seq = cfg.stack_flops(seq_len, first_only)
  return choices * per_seq + head_flops(head_type, cfg.hidden_size, seq_len, num_labels, cfg.vocab_size, choices)


def generate_flops(cfg, source_len: int, new_tokens: int) -> int:
  """Greedy decoding per example (`ModelConfig.generate_flops`)."""
  return cfg.generate_flops(source_len, new_tokens)


def forward_flops(cfg, batch_size: int, seq_len: int, head_type: str | None = "classification",
                  num_labels: int = 2, choices: int = 1, target_len: int = 0) -> int:
  """Model FLOPs of one forward step over a batch: encoder + head, or for a text-to-text head the
  model's teacher-forced text-to-text pass over `target_len` target positions (LM head included)."""
  if head_type is not None and head_kind(head_type).seq2seq:
    return cfg.flops(batch_size, seq_len, target_len)
  return batch_size * encoder_forward_flops(cfg, seq_len, head_type, num_labels, choices)


def train_flops(cfg, batch_size: int, seq_len: int, head_type: str | None = "classification",
                num_labels: int = 2, choices: int = 1, target_len: int = 0) -> int:
  """Model FLOPs of one training step: 3x the forward pass (forward + backward)."""
  return 3 * forward_flops(cfg, batch_size, seq_len, head_type, num_labels, choices, target_len)


def peak_flops(device=None, dtype: str = "bfloat16") -> tuple[float, str]:
  """(peak FLOP/s of one device, where the number comes from).

  Accelerators: the vendor's dense bf16 peak (also used for f32 runs, the usual MFU convention).
  CPU: measured, by timing a jitted large matmul in `dtype` on all of the process's cores.
  """
  import jax

  device = device or jax.devices()[0]
  kind = getattr(device, "device_kind", "") or ""
  if device.platform == "cpu":
    return measure_matmul_peak(dtype), f"measured {dtype} matmul on {kind or 'cpu'}"
  for name, value in PEAK_BF16:
    if name.lower() in kind.lower():
      return value, f"vendor bf16 peak for {name}"
  return float("nan"), f"unknown device kind {kind!r}"


@functools.lru_cache(maxsize=None)
def measure_matmul_peak(dtype: str = "float32", size: int = 1024, repeats: int = 5, chain_length: int = 8) -> float:
  """Best FLOP/s of a jitted [size, size] @ [size, size] matmul (chained `chain_length` times per call),
  accumulated in f32 like the models' matmuls (`xtjax.models.layers.einsum`)."""
  import jax
  import jax.numpy as jnp

  dt = jnp.dtype(dtype)
  a = jax.random.normal(jax.random.key(0), (size, size), dt)
  b = jax.random.normal(jax.random.key(1), (size, size), dt) / size

  @jax.jit
  def chain(a, b):
    for _ in range(chain_length):
      a = jnp.dot(a, b, preferred_element_type=jnp.float32).astype(dt)
    return a

  chain(a, b).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    chain(a, b).block_until_ready()
    best = min(best, time.perf_counter() - t0)
  return chain_length * 2 * size ** 3 / best
