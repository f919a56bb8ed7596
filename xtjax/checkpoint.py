"""Orbax checkpoints of a run: keep-last-N for exact resume, plus the best by the dev metric.

A checkpoint holds the whole TrainState (params, optimizer state, step, RNG), the data position
and the resolved config. Restores go straight into the current mesh's shardings, so a run may
resume on a different device count. A checkpoint that cannot be read is skipped with a warning in
favour of the previous one.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import jax
from etils import epath

from xtjax import config as config_lib
from xtjax.errors import CheckpointError, ConfigError
from xtjax.io_utils import WRITE_ERRNOS, as_path, naming_errors, run_path
from xtjax.models import hf_io, store
from xtjax.models import lora as lora_lib
from xtjax.models.scan import to_per_layer
from xtjax.models.heads import HEAD_TYPES, HeadConfig
from xtjax.runs import start
from xtjax.runs.schema import TaskConfig, TrainConfig

log = logging.getLogger(__name__)


def _ocp():
  import orbax.checkpoint as ocp

  return ocp


def abstract_like(tree, shardings):
  """ShapeDtypeStructs carrying the target shardings, for restoring into a mesh."""
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


class RunCheckpoints:
  """`<workdir>/checkpoints` (last N, for resume) and `<workdir>/best` (best dev metric)."""

  def __init__(self, workdir: epath.PathLike, keep: int = 2, async_save: bool = True):
    ocp = _ocp()
    self.workdir = run_path(workdir)  # local or gs://: Orbax writes either natively
    # cleanup_tmp_directories: a save cut short (full disk, SIGKILL) leaves `N.orbax-checkpoint-tmp*`.
    opts = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=async_save,
                                        create=True, cleanup_tmp_directories=True)
    self.last = ocp.CheckpointManager(self.workdir / "checkpoints", options=opts)
    best_opts = ocp.CheckpointManagerOptions(max_to_keep=1, enable_async_checkpointing=False, create=True,
                                             best_fn=lambda m: m["score"], best_mode="max",
                                             cleanup_tmp_directories=True)
    self.best = ocp.CheckpointManager(self.workdir / "best", options=best_opts)

  def save(self, step: int, state, data: dict, config: dict, force: bool = False) -> None:
    ocp = _ocp()
    if step in self.last.all_steps():  # e.g. preempted right after a periodic save
      return
    with naming_errors(self.workdir / "checkpoints", WRITE_ERRNOS):  # Orbax's OSErrors name no file
      self.last.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                   data=ocp.args.JsonSave(data), config=ocp.args.JsonSave(config)),
                     force=force)

  def save_best(self, step: int, params, score: float, info: dict) -> None:
    ocp = _ocp()
    with naming_errors(self.workdir / "best", WRITE_ERRNOS):
      self.best.save(step, args=ocp.args.Composite(params=ocp.args.StandardSave(params),
                                                   info=ocp.args.JsonSave(info)),
                     metrics={"score": float(score)}, force=True)

  def best_score(self) -> float | None:
    step = self.best.best_step()
    if step is None:
      return None
    return float(self.restore_best_info(step)["score"])

  def restore_best_info(self, step: int) -> dict:
    ocp = _ocp()
    return self.best.restore(step, args=ocp.args.Composite(info=ocp.args.JsonRestore())).info

  def latest_steps(self) -> list[int]:
    return sorted(self.last.all_steps(), reverse=True)

  def restore_latest(self, abstract_state) -> tuple[Any, dict, int] | None:
    """(state, data position json, step) from the newest readable checkpoint, or None."""
    ocp = _ocp()
    steps = self.latest_steps()
    errors = []
    for step in steps:
      try:
        r = self.last.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state),
                                                            data=ocp.args.JsonRestore()))
        return r.state, r.data, step
      except Exception as e:  # noqa: BLE001 - any unreadable checkpoint falls back to the previous one
        log.warning("checkpoint at step %d in %s is unreadable (%s: %s); trying the previous one", step,
                    self.workdir / "checkpoints", type(e).__name__, str(e)[:200])
        errors.append(f"step {step}: {type(e).__name__}: {str(e)[:160]}")
    if steps:  # never silently start over next to checkpoints we cannot read
      raise CheckpointError(f"{self.workdir / 'checkpoints'}: no checkpoint fits this run (written by another "
                            f"model or config?); move the directory away to start afresh. {errors[0]}")
    return None

  def wait(self) -> None:
    with naming_errors(self.workdir / "checkpoints", WRITE_ERRNOS):
      self.last.wait_until_finished()
    self.best.wait_until_finished()

  def close(self) -> None:
    with naming_errors(self.workdir / "checkpoints", WRITE_ERRNOS):
      self.last.close()
    self.best.close()


def export_encoder(run_dir: epath.PathLike, family, encoder_config, params, tokenizer, lora=None, base=None) -> None:
  """`<run>/model`: the encoder of a TaskModel's `params` as an xtjax model folder (what `init_from` reads).
  With `lora`, its adapters merged into the weights there, and kept apart in `<run>/adapters` with the
  `base` source they were trained on (for `init_from_lora: adapters`).

  Every process joins the gather (encoder shards may live on other hosts); process 0 writes."""
  import numpy as np
  from flax import nnx
  from jax.experimental import multihost_utils

  enc = params["encoder"]
  if jax.process_count() > 1:
    enc = jax.tree.map(lambda x: np.asarray(multihost_utils.process_allgather(x, tiled=True)), enc)
  if jax.process_index() == 0:
    if lora is not None:
      pure = to_per_layer(nnx.to_pure_dict(enc))  # adapters saved and merged per layer, as the model folder
      store.save_adapters(as_path(run_dir) / start.ADAPTERS_DIR, {"encoder": lora_lib.adapters_only(pure)},
                          config_lib.to_dict(lora), base)
      enc = lora_lib.merged(pure, lora.alpha)
    store.save(as_path(run_dir) / "model", family, encoder_config, enc, tokenizer)


# ---- reading a run: the one way train, infer and cli see a run directory ---------------------------


@dataclasses.dataclass(frozen=True)
class RunInfo:
  """A run directory as written by `xtjax train`: its resolved config, best checkpoint and heads.

  The encoder config comes from the exported `model/` folder when the run finished, else from the
  run's start source (`xtjax.runs.start`); label counts and the pooler from the checkpoint itself.
  """

  run_dir: epath.Path
  config: TrainConfig
  family: Any  # xtjax.models.registry.Family
  encoder_config: Any
  heads: dict[str, HeadConfig]  # every trained task's head
  embedding_tasks: tuple[str, ...]  # retrieval tasks: no head, sentence embeddings
  rules: Any
  best_dir: epath.Path
  best_step: int
  tokenizer_dir: epath.Path | None

  @property
  def config_path(self) -> epath.Path:
    return self.run_dir / "config.yaml"

  def task_config(self, name: str) -> TaskConfig:
    for t in self.config.tasks:
      if t.name == name:
        return t
    names = [t.name for t in self.config.tasks]
    raise ConfigError(f"{self.config_path}: the run has no task {name!r} (tasks: {names})")

  def load_tokenizer(self):
    return hf_io.load_tokenizer(self.tokenizer_dir) if self.tokenizer_dir is not None else None


def read_run_config(run_dir: epath.PathLike) -> TrainConfig:
  """The typed TrainConfig of a run directory's `config.yaml`."""
  path = as_path(run_dir) / "config.yaml"
  if not path.exists():
    raise ConfigError(f"{path}: missing; expected a run directory written by `xtjax train`")
  return config_lib.from_dict(TrainConfig, config_lib.read_yaml(path), str(path))


def _best(run_dir: epath.Path) -> tuple[epath.Path, int]:
  ocp = _ocp()
  best = run_dir / "best"
  if not best.exists():
    raise CheckpointError(f"{run_dir}: no best checkpoint (expected {best}); is this a run directory?")
  mngr = ocp.CheckpointManager(best, options=ocp.CheckpointManagerOptions(create=False, read_only=True))
  step = mngr.latest_step()
  mngr.close()
  if step is None:
    raise CheckpointError(f"{best}: no checkpoint saved yet")
  return best, step


def _param_shapes(best: epath.Path, step: int) -> dict:
  """{path: shape} nested like the TaskModel state, read from the checkpoint metadata (no data)."""
  ocp = _ocp()
  try:
    with ocp.StandardCheckpointer() as ckptr:
      md = ckptr.metadata(best / str(step) / "params")
  except Exception as e:  # noqa: BLE001 - any unreadable metadata is reported with its path
    raise CheckpointError(f"{best / str(step) / 'params'}: unreadable ({type(e).__name__}: {str(e)[:200]})") from e
  tree = getattr(md, "item_metadata", md)
  tree = getattr(tree, "tree", tree)
  return jax.tree.map(lambda x: tuple(getattr(x, "shape", ())), tree)


def _leaf_shape(node) -> tuple:
  return node["value"] if isinstance(node, dict) and "value" in node else node


def _num_labels(task) -> int:
  try:
    return int(task.num_labels)
  except Exception:  # noqa: BLE001 - tasks whose label set comes from data (ccg) before reading it
    return 2


def read_run(run_dir: epath.PathLike) -> RunInfo:
  """The typed view of a run directory (config, encoder, heads, best step); reads no parameters."""
  from xtjax.parallel.rules import rules_from_config
  from xtjax.tasks import registry as task_registry

  run_dir = run_path(run_dir)
  cfg = read_run_config(run_dir)
  where = str(run_dir / "config.yaml")
  if store.is_model_dir(run_dir / "model"):
    family, enc_cfg = store.read_meta(run_dir / "model")
    tok_dir = store.tokenizer_dir(run_dir / "model")
  else:
    family, enc_cfg, tok_dir = start.encoder_config(start.encoder_source(cfg))
    enc_cfg = start.configure_encoder(enc_cfg, cfg.model, where)
  tok_dir = start.tokenizer_override(cfg.model) or tok_dir
  best, step = _best(run_dir)
  shapes = _param_shapes(best, step)
  enc_cfg = enc_cfg.for_saved_params(shapes.get("encoder", {}))  # the checkpoint decides (e.g. a pooler or not)
  heads, embedding = {}, []
  for t in cfg.tasks:
    task = task_registry.get(t.name)
    if task.head_type not in HEAD_TYPES:
      embedding.append(task.name)
      continue
    head_shapes = shapes.get("heads", {}).get(task.name)
    if head_shapes is None:
      raise CheckpointError(f"{best}: no parameters for the head of task {task.name!r}")
    out = _leaf_shape(head_shapes.get("out", {}).get("kernel", ()))
    num_labels = out[-1] if task.head_type in ("classification", "tagging") and out else _num_labels(task)
    heads[task.name] = HeadConfig(type=task.head_type, num_labels=int(num_labels))
  return RunInfo(run_dir, cfg, family, enc_cfg, heads, tuple(embedding), rules_from_config(cfg.rules), best, step,
                 tok_dir)


def restore_best(run: RunInfo, mesh, encoder_config=None):
  """(graphdef, params) of the run's best TaskModel, every array restored into its sharding on `mesh`.

  `encoder_config`: the run's, or one that differs only in compute dtype (serving in bf16)."""
  from xtjax.models.init import abstract_task_model
  from xtjax.parallel.rules import state_shardings

  ocp = _ocp()
  graphdef, abstract = abstract_task_model(run.family, encoder_config or run.encoder_config, run.heads,
                                           run.config.lora)
  target = abstract_like(abstract, state_shardings(abstract, mesh, run.rules))
  mngr = ocp.CheckpointManager(run.best_dir, options=ocp.CheckpointManagerOptions(create=False, read_only=True))
  try:
    restored = mngr.restore(run.best_step, args=ocp.args.Composite(params=ocp.args.StandardRestore(target)))
  except Exception as e:  # noqa: BLE001
    raise CheckpointError(f"{run.best_dir}: cannot restore step {run.best_step} into the model built from "
                          f"{run.config_path} ({type(e).__name__}: {str(e)[:300]})") from e
  finally:
    mngr.close()
  return graphdef, restored.params
