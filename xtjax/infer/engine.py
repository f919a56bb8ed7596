"""The separate jitted inference path: a fine-tuned run or a pretrained model, served per shape bucket.

Requests are padded up to configured batch-size and sequence-length buckets (`buckets.py`), and
each (entry point, head, batch bucket, length bucket) is compiled ahead of time once
(`jax.jit(...).lower(...).compile()`), so requests inside a bucket never recompile; the engine
counts its compilations. Parameters are restored straight into their shardings on the mesh with
the training rules, and an optional persistent XLA compilation cache lets a second process start
warm. The programs and the head function are training's own (`xtjax.evaluation.programs`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from xtjax.errors import XtjaxError
from xtjax.evaluation.buckets import Buckets, effective_length
from xtjax.evaluation.programs import BucketedPrograms, ProgramStats, head_fn, head_key
from xtjax.infer import build
from xtjax.infer.xla_setup import enable_compilation_cache, persistent_cache_hits
from xtjax.models import init as model_init
from xtjax.models import registry
from xtjax.models.encoder import pool
from xtjax.models.generate import can_generate
from xtjax.models.heads import HeadConfig
from xtjax.models.task_model import encoder_outputs
from xtjax.parallel.mesh import MeshConfig
from xtjax.parallel.rules import DEFAULT_RULES, Rules

log = logging.getLogger(__name__)


class InferenceEngine:
  """Compiled-per-bucket `predict` (task heads), `embed` (sentence vectors) and `generate` (mT5/T5).

  `graphdef`/`params` are a TaskModel (`task_model=True`, with `heads`) or a bare encoder / T5.
  Build one with `from_run`, `from_model`, `from_preset` or `random`.
  """

  def __init__(self, family: registry.Family, config, graphdef, params, *, task_model: bool,
               heads: Mapping[str, HeadConfig] | None = None, tokenizer=None, mesh: Mesh | MeshConfig | None = None,
               rules: Rules = DEFAULT_RULES, buckets: Buckets | None = None, source: str = "",
               feature_settings=None, compilation_cache_dir: str | Path | None = None):
    if compilation_cache_dir is not None:
      enable_compilation_cache(compilation_cache_dir)
    self.family, self.config, self.graphdef, self.params = family, config, graphdef, params
    self.task_model = task_model
    self.heads = dict(heads or {})
    self.tokenizer = tokenizer
    self.mesh = build.resolve_mesh(mesh)
    self.rules = rules
    self.buckets = buckets or Buckets()
    self.source = source
    self.feature_settings = feature_settings  # the run's featurisation (predict_examples)
    self.pad_id = config.pad_id
    self.programs = BucketedPrograms(self.mesh, rules, self.buckets, self.pad_id, persistent_cache_hits)
    self.run = None  # the RunInfo of a run directory (from_run)

  # ---- construction -------------------------------------------------------------------------------

  @classmethod
  def from_run(cls, run_dir: str | Path, *, dtype: str | None = None, param_dtype: str | None = None,
               mesh: Mesh | MeshConfig | None = None, buckets: Buckets | None = None,
               compilation_cache_dir: str | Path | None = None) -> InferenceEngine:
    """A fine-tuned run: the encoder and every task head from `<run>/best` (`xtjax.runs.info.read_run`)."""
    from xtjax.checkpoint import restore_best
    from xtjax.runs.info import read_run

    run = read_run(run_dir)
    cfg = build.with_dtype(run.encoder_config, dtype)
    mesh = build.resolve_mesh(mesh)
    graphdef, params = restore_best(run, mesh, cfg)
    engine = cls(run.family, cfg, graphdef, build.cast_params(params, param_dtype), task_model=True, heads=run.heads,
                 tokenizer=run.load_tokenizer(), mesh=mesh, rules=run.rules, buckets=buckets,
                 source=f"run:{run.run_dir}", feature_settings=run.config.features,
                 compilation_cache_dir=compilation_cache_dir)
    engine.run = run
    return engine

  @classmethod
  def from_model(cls, path_or_id: str | Path, *, dtype: str | None = None, param_dtype: str | None = None,
                 mesh: Mesh | MeshConfig | None = None, buckets: Buckets | None = None,
                 compilation_cache_dir: str | Path | None = None) -> InferenceEngine:
    """A converted Hugging Face / xtjax model folder: sentence embedding (and `generate` for mT5/T5)."""
    from xtjax.models.loading import load_pretrained

    mesh = build.resolve_mesh(mesh)
    pre = load_pretrained(path_or_id, mesh=mesh, dtype=build.dtype_name(dtype), param_dtype=param_dtype)
    return cls(pre.family, pre.config, pre.graphdef, pre.params, task_model=False, tokenizer=pre.tokenizer,
               mesh=mesh, buckets=buckets, source=pre.source, compilation_cache_dir=compilation_cache_dir)

  @classmethod
  def from_preset(cls, preset: str, *, heads: Mapping[str, HeadConfig] | None = None, dtype: str | None = None,
                  overrides: Mapping[str, Any] | None = None, seed: int = 0, mesh: Mesh | MeshConfig | None = None,
                  buckets: Buckets | None = None, compilation_cache_dir: str | Path | None = None) -> InferenceEngine:
    """A randomly initialised preset: with `heads` (default: a 3-way classification head `cls`), or
    for an encoder-decoder preset without `heads` the bare model, for `generate`."""
    family, cfg = registry.preset(preset)
    cfg = build.with_overrides(build.with_dtype(cfg, dtype), overrides)
    kw = dict(mesh=mesh, buckets=buckets, source=f"preset:{preset}", compilation_cache_dir=compilation_cache_dir)
    if heads is None and can_generate(cfg):
      kw["mesh"] = build.resolve_mesh(mesh)
      graphdef, params = model_init.init(family, cfg, seed, kw["mesh"])
      return cls(family, cfg, graphdef, params, task_model=False, **kw)
    return cls.random(family, cfg, heads=heads, seed=seed, **kw)

  @classmethod
  def random(cls, family, cfg, *, heads: Mapping[str, HeadConfig] | None = None, seed: int = 0,
             mesh: Mesh | MeshConfig | None = None, **kw) -> InferenceEngine:
    """A randomly initialised TaskModel of `cfg` with `heads` (default: a 3-way classifier `cls`)."""
    mesh = build.resolve_mesh(mesh)
    heads = dict(heads) if heads is not None else {"cls": HeadConfig("classification", 3)}
    graphdef, params, _ = model_init.init_task_model(family, cfg, heads, mesh, DEFAULT_RULES, seed)
    kw.setdefault("source", "random")
    return cls(family, cfg, graphdef, params, task_model=True, heads=heads, mesh=mesh, **kw)

  # ---- compilation --------------------------------------------------------------------------------

  @property
  def compilations(self) -> int:
    return self.stats.compilations

  @property
  def stats(self) -> ProgramStats:
    return self.programs.stats

  def _executable(self, key: tuple, fn: Callable, example: Mapping[str, np.ndarray]):
    return self.programs.executable(key, fn, self.params, example)

  def _bucketed(self, arrays: Mapping[str, np.ndarray], length: int, key: Callable[[dict], tuple], fn: Callable,
                prepare: Callable | None = None) -> list:
    return self.programs.bucketed(arrays, length, key, fn, self.params, prepare)

  # ---- task heads ---------------------------------------------------------------------------------

  def head_type(self, task: str) -> str:
    if task not in self.heads:
      raise XtjaxError(f"no head {task!r} in {self.source}; heads: {sorted(self.heads)}")
    return self.heads[task].type

  def predict(self, task: str, inputs: Mapping[str, np.ndarray]):
    """Head outputs in f32 numpy, one row per input row, as the training eval step computes them.

    classification [N, labels]; multiple_choice [N, C] (inputs [N, C, L]); span (start, end)
    [N, L]; tagging [N, L, labels]. Classification and multiple-choice requests are cut to their
    longest attended length before bucketing; span and tagging keep the given width.
    """
    head = self.head_type(task)
    if "input_ids" not in inputs or "attention_mask" not in inputs:
      raise XtjaxError("predict needs input_ids and attention_mask")
    return self.programs.head_outputs(self.graphdef, self.params, task, head, inputs)

  def predict_examples(self, task_name: str, examples: Sequence[Any], settings=None):
    """Task examples -> the task's predictions: featurise, head outputs, the task's post-processing."""
    from xtjax.tasks import registry as task_registry
    from xtjax.tasks.base import FeatureSettings

    if self.tokenizer is None:
      raise XtjaxError(f"{self.source}: no tokenizer to featurise examples with")
    task = task_registry.get(task_name)
    settings = settings or self.feature_settings or FeatureSettings()
    features = task.featurize(examples, self.tokenizer, settings)
    outputs = self.predict(task_name, features.arrays)
    return task.predict(outputs, features, examples, settings)

  # ---- sentence embeddings -----------------------------------------------------------------------

  def _embed_fn(self, layer: int, pooling: str):
    graphdef, task_model = self.graphdef, self.task_model

    def fn(params, batch):
      model = nnx.merge(graphdef, params)
      out = encoder_outputs(model.encoder if task_model else model, batch["input_ids"], batch["attention_mask"])
      return pool(out.hidden_states[layer], batch["attention_mask"], pooling).astype(jnp.float32)

    return fn

  def _layer_index(self, layer: int) -> int:
    n_hidden = self.config.num_hidden_states
    if not -n_hidden <= layer < n_hidden:
      raise XtjaxError(f"layer {layer} is out of range: the model has hidden states 0..{n_hidden - 1}")
    return layer % n_hidden

  def embed(self, input_ids: np.ndarray, attention_mask: np.ndarray, layer: int = -1, pooling: str = "mean"):
    """[N, hidden] f32 sentence vectors: `pooling` over hidden_states[layer] (0: embedding output)."""
    if pooling not in ("mean", "cls"):
      raise XtjaxError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
    layer = self._layer_index(layer)
    arrays = {"input_ids": np.asarray(input_ids), "attention_mask": np.asarray(attention_mask)}
    key = lambda b: ("embed", layer, pooling) + b["input_ids"].shape  # noqa: E731
    outs = self._bucketed(arrays, effective_length(arrays["attention_mask"]), key, self._embed_fn(layer, pooling))
    return np.concatenate(outs)

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
      tok, mask = _pack([ids[i] for i in idx], self.pad_id)
      vec = self.embed(tok, mask, layer, pooling)
      if result is None:
        result = np.zeros((len(sentences), vec.shape[1]), np.float32)
      result[idx] = vec
    return result

  # ---- generation (mT5 / T5) ---------------------------------------------------------------------

  def _generate_fn(self, max_new_tokens: int, num_beams: int, length_penalty: float, early_stopping):
    from xtjax.models.generate import searches_for

    graphdef, searches = self.graphdef, searches_for(self.config)
    if num_beams > 1 and searches.beam is None:
      raise XtjaxError(f"{self.source}: beam search is not implemented for this model; use num_beams=1")

    def fn(params, batch):
      model = nnx.merge(graphdef, params)
      ids, mask = batch["input_ids"], batch["attention_mask"]
      if num_beams == 1:
        return searches.greedy(model, ids, mask, max_new_tokens)
      return searches.beam(model, ids, mask, max_new_tokens, num_beams, length_penalty, early_stopping)

    return fn

  def generate(self, input_ids: np.ndarray, attention_mask: np.ndarray, *, max_new_tokens: int = 32,
               num_beams: int = 1, length_penalty: float = 1.0, early_stopping: bool | str = False):
    """`xtjax.models.generate` per bucket: (sequences [N, 1 + max_new_tokens], lengths [N], scores [N])."""
    from xtjax.models.generate import GenerateOutput

    if self.task_model or not can_generate(self.config):
      raise XtjaxError(f"{self.source}: generate needs an encoder-decoder model (mT5 / T5) or a decoder-only LLM")
    if max_new_tokens < 1 or num_beams < 1:
      raise XtjaxError("max_new_tokens and num_beams must be >= 1")
    arrays = {"input_ids": np.asarray(input_ids), "attention_mask": np.asarray(attention_mask)}
    opts = (max_new_tokens, num_beams, float(length_penalty), early_stopping)
    filler = self.config.filler_id

    def filler_eos(batch, rows):  # filler rows: one token, as xtjax.models.generate.generate_texts
      batch["input_ids"][rows:, 0] = filler

    outs = self._bucketed(arrays, effective_length(arrays["attention_mask"]),
                          lambda b: ("generate",) + b["input_ids"].shape + opts, self._generate_fn(*opts), filler_eos)
    return GenerateOutput(*(np.concatenate([o[i] for o in outs]) for i in range(3)))

  def generate_texts(self, prompts: Sequence[str], *, max_new_tokens: int = 32, num_beams: int = 1,
                     max_length: int | None = None) -> list[str]:
    if self.tokenizer is None:
      raise XtjaxError(f"{self.source}: no tokenizer")
    ids = self.tokenizer(list(prompts), truncation=True, max_length=max_length or self.buckets.lengths[-1])
    tok, mask = _pack(ids["input_ids"], self.pad_id)
    out = self.generate(tok, mask, max_new_tokens=max_new_tokens, num_beams=num_beams)
    return [self.tokenizer.decode(out.sequences[r, 1:1 + out.lengths[r]].tolist(), skip_special_tokens=True)
            for r in range(len(tok))]

  # ---- warm-up ------------------------------------------------------------------------------------

  def warmup(self, task: str | None = None, batch_sizes: Sequence[int] | None = None,
             lengths: Sequence[int] | None = None, choices: int = 2) -> float:
    """Compiles every (batch, length) bucket of `task` (None: last-layer mean embedding) ahead of time."""
    t0 = time.perf_counter()
    mc = task is not None and self.head_type(task) == "multiple_choice"
    for B in sorted({self.buckets.batch(b) for b in batch_sizes or self.buckets.batch_sizes}):
      for L in sorted({self.buckets.length(n) for n in lengths or self.buckets.lengths}):
        shape = (B, choices, L) if mc else (B, L)
        batch = {"input_ids": np.full(shape, self.pad_id, np.int32), "attention_mask": np.ones(shape, np.int32)}
        if task is None:
          layer = self._layer_index(-1)
          self._executable(("embed", layer, "mean", B, L), self._embed_fn(layer, "mean"), batch)
        else:
          self._executable(head_key(task, batch), head_fn(self.graphdef, task), batch)
    return time.perf_counter() - t0


def _pack(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
  """Token-id lists -> (ids, attention mask) [len(rows), longest], padded with `pad_id`."""
  width = max(len(r) for r in rows)
  ids = np.full((len(rows), width), pad_id, np.int32)
  mask = np.zeros((len(rows), width), np.int32)
  for i, r in enumerate(rows):
    ids[i, :len(r)], mask[i, :len(r)] = r, 1
  return ids, mask
