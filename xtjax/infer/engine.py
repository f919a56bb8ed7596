"""The separate jitted inference path: a fine-tuned run or a pretrained model, served per shape bucket.

Requests are padded up to configured batch-size and sequence-length buckets, and each
(entry point, head, batch bucket, length bucket) is compiled ahead of time once
(`jax.jit(...).lower(...).compile()`), so requests inside a bucket never recompile; the engine
counts its compilations. Parameters are restored straight into their shardings on the mesh with
the training rules, and an optional persistent XLA compilation cache lets a second process start
warm. The computation is the training code's eval step (`TaskModel.__call__`, f32 outputs).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding

from xtjax.errors import CheckpointError, ConfigError, XtjaxError
from xtjax.models import registry
from xtjax.models.encoder import pool
from xtjax.models.heads import HEAD_TYPES, HeadConfig
from xtjax.models.layers import to_dtype
from xtjax.models.task_model import TaskModel, encoder_outputs
from xtjax.parallel.mesh import MeshConfig, make_mesh
from xtjax.parallel.rules import DEFAULT_RULES, Rules, logical_to_spec, state_shardings

log = logging.getLogger(__name__)

INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")


@dataclasses.dataclass(frozen=True)
class Buckets:
  """Padded shapes: a request of n rows and length l runs as (smallest batch >= n, smallest length >= l).

  More rows than the largest batch size run in chunks of the largest; a length above the largest
  bucket is an error (truncate when featurising).
  """

  batch_sizes: tuple[int, ...] = (1, 8, 32)
  lengths: tuple[int, ...] = (32, 64, 128, 256, 512)

  def __post_init__(self):
    for name in ("batch_sizes", "lengths"):
      vals = tuple(sorted({int(v) for v in getattr(self, name)}))
      if not vals or vals[0] < 1:
        raise ConfigError(f"buckets.{name}: need positive sizes, got {getattr(self, name)}")
      object.__setattr__(self, name, vals)

  def batch(self, n: int) -> int:
    return next((b for b in self.batch_sizes if b >= n), self.batch_sizes[-1])

  def length(self, n: int) -> int:
    for b in self.lengths:
      if b >= n:
        return b
    raise XtjaxError(f"sequence length {n} exceeds the largest length bucket {self.lengths[-1]}")


@dataclasses.dataclass
class EngineStats:
  compilations: int = 0  # executables built in this process (persistent-cache loads included)
  cache_hits: int = 0  # of those, loaded from the persistent compilation cache
  compile_seconds: float = 0.0
  calls: int = 0
  padded_rows: int = 0  # filler rows added to reach a batch bucket
  keys: list = dataclasses.field(default_factory=list)


# ---- persistent compilation cache -----------------------------------------------------------------

_CACHE_EVENTS = {"hits": 0}
_listener_lock = threading.Lock()
_listener_installed = False


def _on_event(event: str, **kwargs) -> None:
  if event == "/jax/compilation_cache/cache_hits":
    _CACHE_EVENTS["hits"] += 1


def _install_listener() -> None:
  global _listener_installed
  with _listener_lock:
    if not _listener_installed:
      jax.monitoring.register_event_listener(_on_event)
      _listener_installed = True


def enable_compilation_cache(path: str | Path) -> Path:
  """Persists every compiled executable under `path` (a second process loads instead of compiling)."""
  path = Path(path).absolute()
  path.mkdir(parents=True, exist_ok=True)
  if jax.config.jax_compilation_cache_dir != str(path):
    jax.config.update("jax_compilation_cache_dir", str(path))
    try:  # the cache object is created once per process; point it at the new folder
      from jax._src import compilation_cache

      compilation_cache.reset_cache()
    except (ImportError, AttributeError):
      pass
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return path


# ---- XLA:CPU tuning -----------------------------------------------------------------------------------

# XLA:CPU (jaxlib 0.10) hands whole attention blocks (QK^T, mask, softmax, PV) to one YNNPACK
# library fusion that runs ~3x slower than XLA's own dot + loop-fusion code; turning library
# fusions off made the batch-16 XLM-R forward 18% faster (batch-1 and training unchanged).
CPU_XLA_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=",)
_TUNED_JAXLIB = ("0.10.",)  # unknown flags abort XLA, so only where this flag is known to exist


def tune_cpu_flags() -> bool:
  """Adds CPU_XLA_FLAGS to XLA_FLAGS if no JAX backend is up yet (they only affect XLA:CPU).

  Must run before the first JAX computation of the process (the CLI's `bench` and `predict` call
  it first); returns whether the flags were applied. XTJAX_CPU_TUNING=0 turns it off.
  """
  import os

  from jax._src import xla_bridge

  if os.environ.get("XTJAX_CPU_TUNING", "1") == "0" or xla_bridge.backends_are_initialized():
    return False
  import jaxlib

  if not jaxlib.__version__.startswith(_TUNED_JAXLIB):
    return False
  flags = os.environ.get("XLA_FLAGS", "")
  extra = [f for f in CPU_XLA_FLAGS if f.split("=")[0] not in flags]
  if extra:
    os.environ["XLA_FLAGS"] = " ".join([flags] + extra).strip()
  return True


# ---- helpers ----------------------------------------------------------------------------------------


def effective_length(attention_mask: np.ndarray) -> int:
  """1 + the last position any row attends to (at least 1)."""
  m = np.asarray(attention_mask).reshape(-1, np.asarray(attention_mask).shape[-1])
  cols = np.nonzero(m.any(axis=0))[0]
  return int(cols[-1]) + 1 if cols.size else 1


def _pad_rows(arrays: dict[str, np.ndarray], rows: int, length: int, pad_id: int) -> dict[str, np.ndarray]:
  """Pads (or crops) the last axis to `length` and the first axis to `rows`; filler rows see one token."""
  out = {}
  for k, v in arrays.items():
    v = np.asarray(v)
    v = v[..., :length]
    fill = pad_id if k == "input_ids" else 0
    widths = [(0, rows - v.shape[0])] + [(0, 0)] * (v.ndim - 2) + [(0, length - v.shape[-1])]
    v = np.pad(v, widths, constant_values=fill)
    if k == "attention_mask" and rows > 0:
      filler = np.asarray(arrays[k]).shape[0]
      v[filler:, ..., 0] = 1  # keeps filler rows finite; their outputs are dropped
    out[k] = v.astype(np.int32)
  return out


def resolve_mesh(mesh: Mesh | MeshConfig | None) -> Mesh:
  if isinstance(mesh, Mesh):
    return mesh
  return make_mesh(mesh or MeshConfig())


# ---- the engine -------------------------------------------------------------------------------------


class InferenceEngine:
  """Compiled-per-bucket `predict` (task heads), `embed` (sentence vectors) and `generate` (mT5/T5).

  `graphdef`/`params` are a TaskModel (with `heads`) or a bare encoder / T5 model (no heads).
  Build one with `from_run`, `from_model` or `from_preset`.
  """

  def __init__(self, family: registry.Family, config, graphdef, params, *, heads: Mapping[str, HeadConfig] | None = None,
               tokenizer=None, mesh: Mesh | MeshConfig | None = None, rules: Rules = DEFAULT_RULES,
               buckets: Buckets | None = None, source: str = "", feature_settings=None,
               compilation_cache_dir: str | Path | None = None, task_model: bool | None = None):
    if compilation_cache_dir is not None:
      enable_compilation_cache(compilation_cache_dir)
    _install_listener()
    self.family, self.config, self.graphdef, self.params = family, config, graphdef, params
    self.heads = dict(heads or {})
    self.task_model = bool(self.heads) if task_model is None else task_model  # False: a bare encoder / T5
    self.tokenizer = tokenizer
    self.mesh = resolve_mesh(mesh)
    self.rules = rules
    self.buckets = buckets or Buckets()
    self.source = source
    self.feature_settings = feature_settings
    self.stats = EngineStats()
    self._compiled: dict[tuple, Any] = {}
    self._param_sh = jax.tree.map(lambda x: x.sharding, params)
    self.pad_id = int(getattr(config, "pad_token_id", 0) or 0)

  # ---- construction -------------------------------------------------------------------------------

  @classmethod
  def from_run(cls, run_dir: str | Path, *, dtype: str | None = None, param_dtype: str | None = None,
               mesh: Mesh | MeshConfig | None = None, buckets: Buckets | None = None,
               compilation_cache_dir: str | Path | None = None) -> InferenceEngine:
    """A fine-tuned run: encoder + every task head, from `<run>/best` (see `runs.py`)."""
    from xtjax.infer import runs

    spec = runs.read_run(run_dir)
    cfg = _with_dtype(spec.encoder_config, dtype)
    mesh = resolve_mesh(mesh or spec.mesh)
    graphdef, params = runs.restore_best(spec, cfg, mesh)
    params = _cast_params(params, param_dtype)
    return cls(spec.family, cfg, graphdef, params, heads=spec.heads, tokenizer=spec.load_tokenizer(), mesh=mesh,
               rules=spec.rules, buckets=buckets, source=f"run:{spec.run_dir}", feature_settings=spec.features,
               compilation_cache_dir=compilation_cache_dir, task_model=True)

  @classmethod
  def from_model(cls, path_or_id: str | Path, *, dtype: str | None = None, param_dtype: str | None = None,
                 mesh: Mesh | MeshConfig | None = None, buckets: Buckets | None = None,
                 compilation_cache_dir: str | Path | None = None) -> InferenceEngine:
    """A converted Hugging Face / xtjax model folder: sentence embedding (and `generate` for mT5/T5)."""
    from xtjax.models.loading import load_pretrained

    mesh = resolve_mesh(mesh)
    pre = load_pretrained(path_or_id, mesh=mesh, dtype=_dtype_name(dtype), param_dtype=param_dtype)
    return cls(pre.family, pre.config, pre.graphdef, pre.params, tokenizer=pre.tokenizer, mesh=mesh, buckets=buckets,
               source=pre.source, compilation_cache_dir=compilation_cache_dir, task_model=False)

  @classmethod
  def from_preset(cls, preset: str, *, heads: Mapping[str, HeadConfig] | None = None, dtype: str | None = None,
                  overrides: Mapping[str, Any] | None = None, seed: int = 0, mesh: Mesh | MeshConfig | None = None,
                  buckets: Buckets | None = None, compilation_cache_dir: str | Path | None = None) -> InferenceEngine:
    """A randomly initialised preset with `heads` (default: one 3-way classification head `cls`, or
    for an encoder-decoder preset the bare model, for `generate`)."""
    family, cfg = registry.preset(preset)
    cfg = _with_overrides(_with_dtype(cfg, dtype), overrides)
    if heads is None and is_seq2seq(cfg):
      from xtjax.models import init as model_init

      mesh = resolve_mesh(mesh)
      graphdef, params = model_init.init(family, cfg, seed, mesh)
      return cls(family, cfg, graphdef, params, mesh=mesh, buckets=buckets, source=f"preset:{preset}",
                 compilation_cache_dir=compilation_cache_dir, task_model=False)
    return cls.random(family, cfg, heads=heads, seed=seed, mesh=mesh,
                      buckets=buckets, source=f"preset:{preset}", compilation_cache_dir=compilation_cache_dir)

  @classmethod
  def random(cls, family, cfg, *, heads: Mapping[str, HeadConfig] | None = None, seed: int = 0,
             mesh: Mesh | MeshConfig | None = None, buckets: Buckets | None = None, source: str = "random",
             compilation_cache_dir: str | Path | None = None) -> InferenceEngine:
    mesh = resolve_mesh(mesh)
    heads = dict(heads) if heads is not None else {"cls": HeadConfig("classification", 3)}
    graphdef, params = build_task_model(family, cfg, heads, mesh, DEFAULT_RULES, seed)
    return cls(family, cfg, graphdef, params, heads=heads, mesh=mesh, buckets=buckets, source=source,
               compilation_cache_dir=compilation_cache_dir, task_model=True)

  # ---- compilation --------------------------------------------------------------------------------

  @property
  def compilations(self) -> int:
    return self.stats.compilations

  def _batch_sharding(self, shape) -> NamedSharding:
    names = ("batch",) + (None,) * (len(shape) - 1)
    return NamedSharding(self.mesh, logical_to_spec(names, self.rules, self.mesh, shape))

  def _executable(self, key: tuple, fn, example: Mapping[str, np.ndarray]):
    """The compiled `fn(params, batch)` for one bucket, compiled on first use."""
    exe = self._compiled.get(key)
    if exe is not None:
      return exe
    batch_sh = {k: self._batch_sharding(v.shape) for k, v in example.items()}
    abstract = {k: jax.ShapeDtypeStruct(v.shape, jnp.int32, sharding=batch_sh[k]) for k, v in example.items()}
    t0, hits0 = time.perf_counter(), _CACHE_EVENTS["hits"]
    jitted = jax.jit(fn, in_shardings=(self._param_sh, batch_sh))
    exe = jitted.lower(self.params, abstract).compile()
    self.stats.compile_seconds += time.perf_counter() - t0
    self.stats.compilations += 1
    self.stats.cache_hits += _CACHE_EVENTS["hits"] - hits0
    self.stats.keys.append(key)
    self._compiled[key] = (exe, batch_sh)
    log.debug("compiled %s in %.2fs", key, time.perf_counter() - t0)
    return self._compiled[key]

  def _run(self, key, fn, batch: Mapping[str, np.ndarray]):
    exe, batch_sh = self._executable(key, fn, batch)
    placed = {k: jax.device_put(v, batch_sh[k]) for k, v in batch.items()}
    self.stats.calls += 1
    return exe(self.params, placed)

  # ---- task heads ---------------------------------------------------------------------------------

  def _head_fn(self, task: str):
    graphdef = self.graphdef

    def fn(params, batch):  # the training eval step (xtjax.train.step.make_eval_step)
      model = nnx.merge(graphdef, params)
      return jax.tree.map(lambda x: x.astype(jnp.float32), model(task, batch))

    return fn

  def head_type(self, task: str) -> str:
    if task not in self.heads:
      raise XtjaxError(f"no head {task!r} in {self.source}; heads: {sorted(self.heads)}")
    return self.heads[task].type

  def predict(self, task: str, inputs: Mapping[str, np.ndarray]):
    """Head outputs in f32 numpy, one row per input row, exactly as the eval step computes them.

    classification [N, labels]; multiple_choice [N, C] (inputs [N, C, L]); span (start, end)
    [N, L]; tagging [N, L, labels]. Classification and multiple-choice requests are cut to their
    longest attended length before bucketing; span and tagging keep the given width.
    """
    head = self.head_type(task)
    arrays = {k: np.asarray(inputs[k]) for k in INPUT_KEYS if k in inputs}
    if "input_ids" not in arrays or "attention_mask" not in arrays:
      raise XtjaxError("predict needs input_ids and attention_mask")
    n, width = arrays["input_ids"].shape[0], arrays["input_ids"].shape[-1]
    length = effective_length(arrays["attention_mask"]) if head in ("classification", "multiple_choice") else width
    Lb = self.buckets.length(length)
    step = self.buckets.batch_sizes[-1]
    chunks = []
    for start in range(0, n, step):
      part = {k: v[start:start + step] for k, v in arrays.items()}
      rows = part["input_ids"].shape[0]
      Bb = self.buckets.batch(rows)
      self.stats.padded_rows += Bb - rows
      batch = _pad_rows(part, Bb, Lb, self.pad_id)
      extra = arrays["input_ids"].shape[1:-1]
      key = ("predict", task, Bb, Lb, extra, tuple(sorted(batch)))
      out = self._run(key, self._head_fn(task), batch)
      chunks.append(jax.tree.map(lambda x, r=rows: np.asarray(x)[:r], out))
    out = jax.tree.map(lambda *xs: np.concatenate(xs), *chunks) if len(chunks) > 1 else chunks[0]
    if head in ("span", "tagging"):  # the bucket may be wider than the request
      out = jax.tree.map(lambda x: x[:, :width], out)
    return out

  def predict_examples(self, task_name: str, examples: Sequence[Any], settings=None):
    """Task examples -> the task's predictions (featurise, head outputs, the task's post-processing)."""
    from xtjax.tasks import registry as task_registry

    if self.tokenizer is None:
      raise XtjaxError(f"{self.source}: no tokenizer to featurise examples with")
    task = task_registry.get(task_name)
    settings = settings or self.feature_settings or _default_settings()
    features = task.featurize(examples, self.tokenizer, settings)
    outputs = self.predict(task_name, features.arrays)
    return task.predict(outputs, features, examples, settings)

  # ---- sentence embeddings -----------------------------------------------------------------------

  def _embed_fn(self, layer: int, pooling: str):
    graphdef, has_heads = self.graphdef, self.task_model

    def fn(params, batch):
      model = nnx.merge(graphdef, params)
      enc = model.encoder if has_heads else model
      out = encoder_outputs(enc, batch["input_ids"], batch["attention_mask"])
      return pool(out.hidden_states[layer], batch["attention_mask"], pooling).astype(jnp.float32)

    return fn

  def embed(self, input_ids: np.ndarray, attention_mask: np.ndarray, layer: int = -1, pooling: str = "mean"):
    """[N, hidden] f32 sentence vectors: `pooling` over hidden_states[layer] (0: embedding output)."""
    if pooling not in ("mean", "cls"):
      raise XtjaxError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
    n_hidden = getattr(self.config, "num_layers") + 1
    if not -n_hidden <= layer < n_hidden:
      raise XtjaxError(f"layer {layer} is out of range: the model has hidden states 0..{n_hidden - 1}")
    layer = layer % n_hidden
    arrays = {"input_ids": np.asarray(input_ids), "attention_mask": np.asarray(attention_mask)}
    Lb = self.buckets.length(effective_length(arrays["attention_mask"]))
    step, chunks = self.buckets.batch_sizes[-1], []
    for start in range(0, arrays["input_ids"].shape[0], step):
      part = {k: v[start:start + step] for k, v in arrays.items()}
      rows = part["input_ids"].shape[0]
      Bb = self.buckets.batch(rows)
      self.stats.padded_rows += Bb - rows
      batch = _pad_rows(part, Bb, Lb, self.pad_id)
      out = self._run(("embed", layer, pooling, Bb, Lb), self._embed_fn(layer, pooling), batch)
      chunks.append(np.asarray(out)[:rows])
    return np.concatenate(chunks)

  def embed_sentences(self, sentences: Sequence[str], layer: int = -1, pooling: str = "mean",
                      max_length: int = 128) -> np.ndarray:
    """Tokenises, groups sentences of similar length and embeds them; rows in input order."""
    from xtjax.models.embed import tokenize

    if self.tokenizer is None:
      raise XtjaxError(f"{self.source}: no tokenizer")
    ids, _ = tokenize(self.tokenizer, sentences, max_length)
    order = np.argsort([len(x) for x in ids], kind="stable")
    result = None
    step = self.buckets.batch_sizes[-1]
    for s in range(0, len(order), step):
      idx = order[s:s + step]
      width = max(len(ids[i]) for i in idx)
      tok = np.full((len(idx), width), self.pad_id, np.int32)
      mask = np.zeros((len(idx), width), np.int32)
      for r, i in enumerate(idx):
        tok[r, :len(ids[i])], mask[r, :len(ids[i])] = ids[i], 1
      vec = self.embed(tok, mask, layer, pooling)
      if result is None:
        result = np.zeros((len(sentences), vec.shape[1]), np.float32)
      result[idx] = vec
    return result

  # ---- generation (mT5 / T5) ---------------------------------------------------------------------

  def _generate_fn(self, max_new_tokens: int, num_beams: int, length_penalty: float, early_stopping):
    from xtjax.models.generate import beam_search, greedy_search

    graphdef = self.graphdef

    def fn(params, batch):
      model = nnx.merge(graphdef, params)
      ids, mask = batch["input_ids"], batch["attention_mask"]
      if num_beams == 1:
        return greedy_search(model, ids, mask, max_new_tokens)
      return beam_search(model, ids, mask, max_new_tokens, num_beams, length_penalty, early_stopping)

    return fn

  def generate(self, input_ids: np.ndarray, attention_mask: np.ndarray, *, max_new_tokens: int = 32,
               num_beams: int = 1, length_penalty: float = 1.0, early_stopping: bool | str = False):
    """`xtjax.models.generate` per bucket: (sequences [N, 1 + max_new_tokens], lengths [N], scores [N])."""
    if not is_seq2seq(self.config) or self.task_model:
      raise XtjaxError(f"{self.source}: generate needs an encoder-decoder model (mT5 / T5)")
    if max_new_tokens < 1 or num_beams < 1:
      raise XtjaxError("max_new_tokens and num_beams must be >= 1")
    from xtjax.models.generate import GenerateOutput

    arrays = {"input_ids": np.asarray(input_ids), "attention_mask": np.asarray(attention_mask)}
    Lb = self.buckets.length(effective_length(arrays["attention_mask"]))
    step, chunks = self.buckets.batch_sizes[-1], []
    fn = self._generate_fn(max_new_tokens, num_beams, float(length_penalty), early_stopping)
    for start in range(0, arrays["input_ids"].shape[0], step):
      part = {k: v[start:start + step] for k, v in arrays.items()}
      rows = part["input_ids"].shape[0]
      Bb = self.buckets.batch(rows)
      self.stats.padded_rows += Bb - rows
      batch = _pad_rows(part, Bb, Lb, self.pad_id)
      batch["input_ids"][rows:, 0] = self.config.eos_token_id  # filler rows: a lone EOS
      key = ("generate", Bb, Lb, max_new_tokens, num_beams, float(length_penalty), early_stopping)
      out = self._run(key, fn, batch)
      chunks.append([np.asarray(x)[:rows] for x in out])
    return GenerateOutput(*(np.concatenate([c[i] for c in chunks]) for i in range(3)))

  def generate_texts(self, prompts: Sequence[str], *, max_new_tokens: int = 32, num_beams: int = 1,
                     max_length: int | None = None) -> list[str]:
    if self.tokenizer is None:
      raise XtjaxError(f"{self.source}: no tokenizer")
    max_length = max_length or self.buckets.lengths[-1]
    ids = self.tokenizer(list(prompts), truncation=True, max_length=max_length)["input_ids"]
    width = max(len(x) for x in ids)
    tok = np.full((len(ids), width), self.pad_id, np.int32)
    mask = np.zeros((len(ids), width), np.int32)
    for r, x in enumerate(ids):
      tok[r, :len(x)], mask[r, :len(x)] = x, 1
    out = self.generate(tok, mask, max_new_tokens=max_new_tokens, num_beams=num_beams)
    return [self.tokenizer.decode(out.sequences[r, 1:1 + out.lengths[r]].tolist(), skip_special_tokens=True)
            for r in range(len(ids))]

  # ---- warm-up ------------------------------------------------------------------------------------

  def warmup(self, task: str | None = None, batch_sizes: Sequence[int] | None = None,
             lengths: Sequence[int] | None = None, choices: int = 2) -> float:
    """Compiles every (batch, length) bucket of `task` (None: sentence embedding) ahead of time."""
    t0 = time.perf_counter()
    for B in batch_sizes or self.buckets.batch_sizes:
      for L in lengths or self.buckets.lengths:
        B_, L_ = self.buckets.batch(B), self.buckets.length(L)
        shape = (B_, choices, L_) if task is not None and self.head_type(task) == "multiple_choice" else (B_, L_)
        batch = {"input_ids": np.full(shape, self.pad_id, np.int32), "attention_mask": np.ones(shape, np.int32)}
        if task is None:
          self._executable(("embed", getattr(self.config, "num_layers"), "mean", B_, L_), self._embed_fn(-1, "mean"),
                           batch)
        else:
          key = ("predict", task, B_, L_, shape[1:-1], tuple(sorted(batch)))
          self._executable(key, self._head_fn(task), batch)
    return time.perf_counter() - t0


# ---- model building ---------------------------------------------------------------------------------


def is_seq2seq(cfg) -> bool:
  """An encoder-decoder config (mT5 / T5 with its decoder)."""
  return hasattr(cfg, "decoder_start_token_id") and not getattr(cfg, "encoder_only", False)


def _dtype_name(dtype: str | None) -> str | None:
  if dtype is None:
    return None
  return {"bf16": "bfloat16", "f32": "float32", "fp32": "float32"}.get(dtype, dtype)


def _with_dtype(cfg, dtype: str | None):
  name = _dtype_name(dtype)
  if name is None:
    return cfg
  to_dtype(name)
  return dataclasses.replace(cfg, dtype=name)


def _with_overrides(cfg, overrides: Mapping[str, Any] | None):
  if not overrides:
    return cfg
  try:
    return dataclasses.replace(cfg, **overrides)
  except (TypeError, ValueError) as e:
    raise ConfigError(f"model config override: {e}") from e


def _cast_params(params, param_dtype: str | None):
  name = _dtype_name(param_dtype)
  if name is None:
    return params
  dt = to_dtype(name)
  return jax.jit(lambda p: jax.tree.map(lambda x: x.astype(dt) if jnp.issubdtype(x.dtype, jnp.floating) else x, p),
                 donate_argnums=0)(params)


def _default_settings():
  from xtjax.tasks.base import FeatureSettings

  return FeatureSettings()


def build_task_model(family, cfg, heads: Mapping[str, HeadConfig], mesh: Mesh, rules: Rules = DEFAULT_RULES,
                     seed: int = 0):
  """(graphdef, params) of a randomly initialised TaskModel, every parameter sharded by the rules."""

  def ctor():
    return TaskModel(family, cfg, dict(heads), rngs=nnx.Rngs(seed))

  graphdef, abstract = nnx.split(nnx.eval_shape(ctor))
  shardings = state_shardings(abstract, mesh, rules)
  params = jax.jit(lambda: nnx.split(ctor())[1], out_shardings=shardings)()
  return graphdef, params


def abstract_task_model(family, cfg, heads: Mapping[str, HeadConfig]):
  return nnx.split(nnx.eval_shape(lambda: TaskModel(family, cfg, dict(heads), rngs=nnx.Rngs(0))))


def check_head_types(heads: Mapping[str, HeadConfig]) -> None:
  for name, hc in heads.items():
    if hc.type not in HEAD_TYPES:
      raise CheckpointError(f"head {name!r}: unknown type {hc.type!r}")
