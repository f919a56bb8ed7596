"""Zero-shot cross-lingual evaluation: a TaskModel trained on English scored in every language.

`zero_shot_eval(run_dir, task, languages)` evaluates a run directory's best checkpoint and never
writes into the run; the trainer calls `zero_shot` on its best parameters at the end of a phase.
Head outputs come from the bucketed compile-once programs (`programs.py`) that inference uses, each
process featurising and post-processing only its share of every language (`shares.py`); retrieval
tasks (no head) embed sentences with the encoder.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from etils import epath
from flax import nnx

from xtjax.evaluation.generation import evaluate_by_generation
from xtjax.models.heads import head_kind
from xtjax.errors import ConfigError
from xtjax.evaluation.buckets import Buckets
from xtjax.evaluation.programs import BucketedPrograms, length_buckets
from xtjax.evaluation.shares import EvalShare, eval_share, gather_predictions
from xtjax.io_utils import as_path, run_path, write_text_atomic
from xtjax.runs.schema import TaskConfig, TrainConfig
from xtjax.tasks import registry as task_registry

log = logging.getLogger(__name__)


def task_features(task, tcfg: TaskConfig, split: str, language: str, tokenizer, settings, cache_dir: epath.PathLike | None,
                  source=None) -> EvalShare:
  """This process's share (`shares.py`) of one split and language, through the feature cache when there is one."""
  return eval_share(task, split, language, source or tcfg.data, tokenizer, settings, cache_dir)


def eval_languages(cfg: TrainConfig, tcfg: TaskConfig) -> tuple[str, ...]:
  """The task's configured languages, else the benchmark's list for it, else none."""
  from xtjax.tasks.xtreme import benchmark_tasks

  if tcfg.eval_languages is not None:
    return tuple(tcfg.eval_languages)
  spec = benchmark_tasks(cfg.benchmark).get(task_registry.get(tcfg.name).source_name)  # a t2t form: its base's
  return tuple(spec.languages) if spec is not None else ()


def numbers(scores: dict) -> dict[str, float]:
  return {k: float(v) for k, v in scores.items() if isinstance(v, (int, float, np.floating, np.integer))}


@dataclasses.dataclass
class EvalModel:
  """What evaluating a TaskModel's parameters needs besides them: its graph, encoder and programs."""

  family: Any
  encoder_config: Any
  graphdef: Any
  tokenizer: Any
  programs: BucketedPrograms
  settings: Any  # FeatureSettings
  source: str

  @classmethod
  def build(cls, family, encoder_config, graphdef, tokenizer, cfg: TrainConfig, mesh, rules, source: str):
    """Programs bucketed at the run's eval batch size and lengths up to its max_length."""
    buckets = Buckets((cfg.eval_batch_size,), length_buckets(cfg.features.max_length))
    pad_id = encoder_config.pad_id
    return cls(family, encoder_config, graphdef, tokenizer, BucketedPrograms(mesh, rules, buckets, pad_id),
               cfg.features, source)

  def evaluate(self, task, share: EvalShare, params, language: str) -> tuple[dict[str, float], Any]:
    """(scores, predictions of the whole split) of one task on one language. Head outputs and `predict`
    run on this process's share only (`shares.py`); every process joins the call. Text-to-text tasks are
    scored on what the encoder-decoder generates (greedy, `evaluation.generation`), on every example by
    every process: `generate_texts` places whole batches, so that path is not split."""
    if head_kind(task.head_type).seq2seq:
      result = evaluate_by_generation(nnx.merge(self.encoder_graphdef, params["encoder"]), self.tokenizer, task,
                                      share.examples, language, self.settings,
                                      batch_size=self.programs.buckets.batch_sizes[-1])
      return numbers(result.scores), result.predictions
    examples, features = share.local()
    outputs = self.programs.head_outputs(self.graphdef, params, task.name, task.head_type, features.arrays,
                                         per_process=True)
    predictions = gather_predictions(task, share, task.predict(outputs, features, examples, self.settings))
    return numbers(task.score(predictions, share.examples, language)), predictions

  @functools.cached_property
  def encoder_graphdef(self):
    """The encoder's graph, built from shapes once (every language and dev evaluation reuses it)."""
    from xtjax.models.init import abstract

    return abstract(self.family, self.encoder_config)[0]

  def encoder_view(self, params):
    """The encoder part of `params` as a Pretrained model (for embeddings and retrieval)."""
    from xtjax.models.loading import Pretrained

    return Pretrained(self.family, self.encoder_config, self.encoder_graphdef, params["encoder"], self.tokenizer,
                      self.source)


def _retrieval(model: EvalModel, task, tcfg: TaskConfig, cfg: TrainConfig, params, lang: str) -> dict:
  """Retrieval stays whole on every process: the nearest-neighbour search needs every sentence's
  embedding, and the encoder already splits each batch's rows over the mesh (`put_global_batch`); only
  tokenising the sentences, which is cheap, is repeated per process."""
  from xtjax.tasks.retrieval import evaluate_retrieval

  out = evaluate_retrieval(task, model.encoder_view(params), tcfg.eval_data or tcfg.data, lang, split=tcfg.eval_split,
                           dev_split=tcfg.dev_split, layer=cfg.retrieval_layer, batch_size=cfg.eval_batch_size,
                           max_length=cfg.features.max_length)
  return numbers(out["scores"])


def zero_shot(model: EvalModel, cfg: TrainConfig, params, cache_dir: epath.PathLike | None,
              predictions_dir: epath.Path | None = None) -> dict:
  """{task: {language: scores, "avg": means}} on each task's eval split in every configured language.

  `predictions_dir`: also write each task's predictions in XTREME's submission layout
  (`<dir>/<task>/<split>-<lang>.<tsv|json>`), which `xtjax score` reads.
  """
  results = {}
  for tcfg in cfg.tasks:
    task = task_registry.get(tcfg.name)
    langs = eval_languages(cfg, tcfg)
    if not langs:
      continue
    per_lang = {}
    for lang in langs:
      if task.head_type == "retrieval":
        per_lang[lang] = _retrieval(model, task, tcfg, cfg, params, lang)
        continue
      share = task_features(task, tcfg, tcfg.eval_split, lang, model.tokenizer, cfg.features, cache_dir,
                            source=tcfg.eval_data or tcfg.data)
      per_lang[lang], predictions = model.evaluate(task, share, params, lang)
      if predictions_dir is not None:
        fmt, text = task.submission_text(predictions, share.examples)
        write_text_atomic(predictions_dir / task.name / f"{tcfg.eval_split}-{lang}.{fmt}", text)
    metrics = sorted({k for v in per_lang.values() for k in v})
    per_lang["avg"] = {k: float(np.mean([v[k] for v in per_lang.values() if k in v])) for k in metrics}
    results[task.name] = per_lang
  return results


def load_run_for_eval(run_dir: epath.PathLike, task: str, languages: Sequence[str] | None = None, *,
                      split: str | None = None, mesh=None) -> tuple[EvalModel, TrainConfig, Any]:
  """(EvalModel, config narrowed to `task` in `languages` / `split`, best params) of a run directory."""
  from xtjax.checkpoint import restore_best
  from xtjax.runs.info import read_run
  from xtjax.parallel.mesh import make_mesh

  run = read_run(run_dir)
  tcfg = run.task_config(task)
  changes: dict[str, Any] = {"eval_languages": tuple(languages)} if languages else {}
  if split:
    changes["eval_split"] = split
  tcfg = dataclasses.replace(tcfg, **changes)
  if not eval_languages(run.config, tcfg):
    raise ConfigError(f"{run.config_path}: task {task!r} has no evaluation languages; pass languages")
  cfg = dataclasses.replace(run.config, tasks=(tcfg,), zero_shot=True)
  mesh = mesh if mesh is not None else make_mesh(cfg.mesh)
  graphdef, params = restore_best(run, mesh)
  model = EvalModel.build(run.family, run.encoder_config, graphdef, run.load_tokenizer(), cfg, mesh, run.rules,
                          f"run:{run.run_dir}")
  return model, cfg, params


def zero_shot_eval(run_dir: epath.PathLike, task: str, languages: Sequence[str] | None = None, *,
                   split: str | None = None, cache_dir: epath.PathLike | None = None, mesh=None) -> dict:
  """Zero-shot scores of a run's best checkpoint on `task` ({task: {language: scores, "avg": ...}}).

  Reads the run (`xtjax.runs.info.read_run`) and writes nothing into it; features are cached in
  `cache_dir` (default: the run's own cache setting, else `<run>/../.feature_cache`).
  """
  model, cfg, params = load_run_for_eval(run_dir, task, languages, split=split, mesh=mesh)
  if cache_dir is None:
    run_dir = run_path(run_dir)
    cache_dir = as_path(cfg.cache_dir) if cfg.cache_dir else run_dir.parent / ".feature_cache"
  return zero_shot(model, cfg, params, as_path(cache_dir))
