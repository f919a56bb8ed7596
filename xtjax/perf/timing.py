"""Timing helpers shared by the inference and training benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np


def percentiles_ms(seconds: Sequence[float]) -> dict[str, float]:
  a = np.asarray(seconds, np.float64) * 1e3
  return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)), "p99": float(np.percentile(a, 99)),
          "mean": float(a.mean()), "min": float(a.min())}


def time_calls(fn: Callable[[], Any], iters: int, warmup: int = 1) -> list[float]:
  """Wall seconds of each of `iters` calls of `fn` (which must block until its result is ready)."""
  for _ in range(warmup):
    fn()
  out = []
  for _ in range(iters):
    t0 = time.perf_counter()
    fn()
    out.append(time.perf_counter() - t0)
  return out


def device_info() -> dict[str, Any]:
  import os

  d = jax.devices()[0]
  return {"platform": d.platform, "device_kind": getattr(d, "device_kind", ""), "num_devices": jax.device_count(),
          "jax": jax.__version__, "xla_flags": os.environ.get("XLA_FLAGS", "")}


def random_inputs(rng: np.random.Generator, vocab_size: int, shape: tuple[int, ...], low: int = 5) -> dict:
  """Token ids that attend everywhere (every position real), so a request fills its bucket."""
  return {"input_ids": rng.integers(low, vocab_size, shape).astype(np.int32),
          "attention_mask": np.ones(shape, np.int32)}
