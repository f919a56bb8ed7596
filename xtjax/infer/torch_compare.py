"""xtjax vs transformers' PyTorch `XLMRobertaForSequenceClassification`, same sizes, one process.

Rounds alternate which framework runs first (jax, torch / torch, jax, ...), so load from other
processes on a shared machine falls on both alike; each phase starts with one untimed call.
Precision is matched: f32 vs f32, and xtjax bf16 compute (f32 master weights) vs torch bf16
autocast. Training is a fine-tuning step with dropout, global-norm clipping at 1.0 and AdamW
(weight decay 0.01) on both sides; inference runs the xtjax inference engine (host arrays in,
host arrays out) vs the torch model under `inference_mode`.

On a shared, oversubscribed CPU, torch's OpenMP threads busy-wait at every barrier and lose
whole scheduler slices (batch-1 latency measured 5-30x worse than on an idle machine), while XLA's
thread pool does not. `omp_passive` (default) sets OMP_WAIT_POLICY=PASSIVE before torch loads,
which is torch's best setting on such a machine; it only takes effect if torch is not yet imported.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from xtjax.evaluation.buckets import Buckets
from xtjax.infer.engine import InferenceEngine
from xtjax.models import registry
from xtjax.models.heads import HeadConfig, loss_terms
from xtjax.models.prng import make_key
from xtjax.parallel.mesh import MeshConfig
from xtjax.perf.timing import device_info, percentiles_ms, random_inputs, time_calls


# The jax side's step mirrors the torch loop it is compared with (clip_grad_norm_ + AdamW, mean loss),
# not the trainer's; `xtjax bench train` (xtjax.train.bench) measures the trainer's own step.
class BenchState(NamedTuple):
  params: Any
  opt_state: Any
  step: jax.Array
  key: jax.Array


def make_optimizer(learning_rate: float = 1e-5, weight_decay: float = 0.01, max_grad_norm: float | None = 1.0):
  """AdamW with global-norm clipping, as fine-tuning runs it (torch: clip_grad_norm_ + AdamW)."""
  adamw = optax.adamw(learning_rate, b1=0.9, b2=0.999, eps=1e-8, weight_decay=weight_decay)
  return optax.chain(optax.clip_by_global_norm(max_grad_norm), adamw) if max_grad_norm else adamw


def make_train_step(graphdef, tx: optax.GradientTransformation, task: str = "cls", head_type: str = "classification",
                    dropout: bool = True):
  """`step(state, batch) -> (state, loss)`: one optimizer update on the mean loss of the batch."""

  def loss_fn(params, batch, key):
    logits = nnx.merge(graphdef, params)(task, batch, dropout_key=key)
    total, count = loss_terms(head_type, logits, batch)
    return total / jnp.maximum(count, 1.0)

  def step(state: BenchState, batch):
    key = jax.random.fold_in(state.key, state.step) if dropout else None
    loss, grads = jax.value_and_grad(loss_fn)(state.params, batch, key)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return BenchState(params, opt_state, state.step + 1, state.key), loss

  return step


def init_bench_state(params, tx, seed: int = 0, rng_impl: str | None = "hash") -> BenchState:
  """Params, optimizer state, step and the dropout key (`rng_impl`: see `xtjax.models.prng`)."""
  return BenchState(params, tx.init(params), jnp.zeros((), jnp.int32), make_key(seed, rng_impl))


class _Jax:

  def __init__(self, family, cfg, batch_size, seq_len, num_labels, dropout, seed=0):
    heads = {"cls": HeadConfig("classification", num_labels)}
    self.engine = InferenceEngine.random(family, cfg, heads=heads, seed=seed, mesh=MeshConfig(devices=1),
                                         buckets=Buckets((1, batch_size), (seq_len,)))
    rng = np.random.default_rng(seed)
    self.inputs = random_inputs(rng, cfg.vocab_size, (batch_size, seq_len))
    self.one = {k: v[:1] for k, v in self.inputs.items()}
    tx = make_optimizer()
    self.step = jax.jit(make_train_step(self.engine.graphdef, tx, dropout=dropout), donate_argnums=(0,))
    params = jax.tree.map(lambda x: x.copy(), self.engine.params)
    self.state = jax.jit(lambda p: init_bench_state(p, tx, seed, "hash"))(params)
    batch = dict(self.inputs, labels=rng.integers(0, num_labels, (batch_size,)).astype(np.int32),
                 example_mask=np.ones((batch_size,), np.int32))
    device = jax.tree.leaves(params)[0].sharding
    self.batch = {k: jax.device_put(v, device) for k, v in batch.items()}

  def train(self):
    self.state, loss = self.step(self.state, self.batch)
    loss.block_until_ready()

  def infer(self):
    return self.engine.predict("cls", self.inputs)

  def infer_one(self):
    return self.engine.predict("cls", self.one)


def torch_model(arch: str, hf: dict, device: str = "cpu", seed: int = 0, **config_kw):
  """A randomly initialised transformers `arch` (e.g. "MT5ForConditionalGeneration") of the HF config
  dict `hf` (`family.hf_config_from`), created directly on `device`."""
  import torch
  import transformers as tf

  hf = dict(hf, **config_kw)
  config = tf.AutoConfig.for_model(hf.pop("model_type"), **hf)
  torch.manual_seed(seed)
  with torch.device(device):
    return getattr(tf, arch)(config)


class TorchStep:
  """One transformers model's training step (loss, backward, global-norm clipping, optimizer) and
  forward under `inference_mode`, bf16 autocast when `bf16`; every call waits for the device."""

  def __init__(self, model, opt, *, bf16: bool, max_grad_norm: float | None = 1.0):
    import torch

    self.torch, self.model, self.opt, self.bf16, self.max_grad_norm = torch, model, opt, bf16, max_grad_norm
    self.device = next(model.parameters()).device
    self.batch: dict = {}

  def tensors(self, **arrays) -> dict:
    return {k: self.torch.from_numpy(np.asarray(v, np.int64)).to(self.device) for k, v in arrays.items()}

  def autocast(self):
    return self.torch.autocast(self.device.type, dtype=self.torch.bfloat16, enabled=self.bf16)

  def sync(self):
    if self.device.type == "cuda":
      self.torch.cuda.synchronize(self.device)

  def train(self):
    self.model.train()
    with self.autocast():
      loss = self.model(**self.batch).loss
    loss.backward()
    if self.max_grad_norm:
      self.torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], self.max_grad_norm)
    self.opt.step()
    self.opt.zero_grad(set_to_none=True)
    self.sync()
    return loss

  def forward(self, **inputs):
    self.model.eval()
    with self.torch.inference_mode(), self.autocast():
      return self.model(**inputs).logits.float().cpu().numpy()


class _Torch(TorchStep):
  """XLMRobertaForSequenceClassification + AdamW on random tokens (`device`: a torch device; `attn`:
  transformers' attn_implementation, e.g. "sdpa", None: its default)."""

  def __init__(self, family, cfg, batch_size, seq_len, num_labels, dropout, bf16, seed=0, device="cpu", attn=None):
    import torch

    hf = family.hf_config_from(cfg)
    if not dropout:
      hf.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    kw = {"attn_implementation": attn} if attn else {}
    model = torch_model("XLMRobertaForSequenceClassification", hf, device, seed, num_labels=num_labels, **kw)
    super().__init__(model, torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.01), bf16=bf16)
    self.vocab_size, self.num_labels, self.seed = cfg.vocab_size, num_labels, seed
    self.use_inputs(batch_size, seq_len)

  def use_inputs(self, batch_size: int, seq_len: int) -> None:
    """Random tokens of this shape for `train`, `infer` and `infer_one`."""
    rng = np.random.default_rng(self.seed)
    ids = rng.integers(5, self.vocab_size, (batch_size, seq_len))
    self.batch = self.tensors(input_ids=ids, attention_mask=np.ones_like(ids),
                              labels=rng.integers(0, self.num_labels, (batch_size,)))
    self.ids, self.mask = self.batch["input_ids"], self.batch["attention_mask"]

  def infer(self):
    return self.forward(input_ids=self.ids, attention_mask=self.mask)

  def infer_one(self):
    return self.forward(input_ids=self.ids[:1], attention_mask=self.mask[:1])


def compare(preset: str = "xlmr-bench-small", *, dtype: str = "float32", batch_size: int = 16, seq_len: int = 128,
            num_labels: int = 3, rounds: int = 5, train_steps: int = 3, infer_iters: int = 5,
            latency_iters: int = 20, dropout: bool = True, overrides: dict | None = None,
            omp_passive: bool = True) -> dict[str, Any]:
  """Interleaved timings of both frameworks; ratios are xtjax / torch (latency: lower is better)."""
  torch_preloaded = "torch" in sys.modules
  if omp_passive and not torch_preloaded:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
  import torch

  family, cfg = registry.preset(preset)
  cfg = dataclasses.replace(cfg, dtype=dtype, **(overrides or {}))
  t0 = time.perf_counter()
  sides = {"jax": _Jax(family, cfg, batch_size, seq_len, num_labels, dropout),
           "torch": _Torch(family, cfg, batch_size, seq_len, num_labels, dropout, dtype == "bfloat16")}
  for s in sides.values():  # compile / first-touch outside the timings
    s.train(), s.infer(), s.infer_one()
  setup_s = time.perf_counter() - t0
  load_start = os.getloadavg()[0]
  times = {name: {"train": [], "infer": [], "latency": []} for name in sides}
  for r in range(rounds):
    order = ["jax", "torch"] if r % 2 == 0 else ["torch", "jax"]
    for phase, n in (("train", train_steps), ("infer", infer_iters), ("latency", latency_iters)):
      for name in order:
        fn = {"train": sides[name].train, "infer": sides[name].infer, "latency": sides[name].infer_one}[phase]
        times[name][phase] += time_calls(fn, n, warmup=1)
  out = {"preset": preset, "dtype": dtype, "batch_size": batch_size, "seq_len": seq_len, "rounds": rounds,
         "dropout": dropout, "torch_version": torch.__version__, "torch_threads": torch.get_num_threads(),
         "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default") if not torch_preloaded else "unknown",
         "device": device_info(), "setup_seconds": setup_s, "load_average": load_start,
         "load_average_end": os.getloadavg()[0]}
  for name in sides:
    t = times[name]
    out[name] = {"train_step_ms": percentiles_ms(t["train"]), "infer_ms": percentiles_ms(t["infer"]),
                 "latency_batch1_ms": percentiles_ms(t["latency"])}
    out[name]["train_examples_per_s"] = batch_size / (out[name]["train_step_ms"]["p50"] / 1e3)
    out[name]["infer_examples_per_s"] = batch_size / (out[name]["infer_ms"]["p50"] / 1e3)
  j, tt = out["jax"], out["torch"]
  out["ratios"] = {"train_examples_per_s": j["train_examples_per_s"] / tt["train_examples_per_s"],
                   "infer_examples_per_s": j["infer_examples_per_s"] / tt["infer_examples_per_s"],
                   "latency_batch1_p50": j["latency_batch1_ms"]["p50"] / tt["latency_batch1_ms"]["p50"]}
  return out


def format_report(r: dict[str, Any]) -> str:
  j, t, q = r["jax"], r["torch"], r["ratios"]
  return "\n".join([
      f"xtjax vs torch {r['torch_version']} ({r['preset']}, {r['dtype']}, batch {r['batch_size']} x len {r['seq_len']}, "
      f"{r['rounds']} interleaved rounds, {r['device']['device_kind'] or r['device']['platform']})",
      f"  train     examples/s   xtjax {j['train_examples_per_s']:8.2f}   torch {t['train_examples_per_s']:8.2f}   "
      f"ratio {q['train_examples_per_s']:.2f}x",
      f"  infer     examples/s   xtjax {j['infer_examples_per_s']:8.2f}   torch {t['infer_examples_per_s']:8.2f}   "
      f"ratio {q['infer_examples_per_s']:.2f}x",
      f"  batch-1   p50 ms       xtjax {j['latency_batch1_ms']['p50']:8.2f}   torch {t['latency_batch1_ms']['p50']:8.2f}"
      f"   ratio {q['latency_batch1_p50']:.2f} (lower is better)",
  ])

