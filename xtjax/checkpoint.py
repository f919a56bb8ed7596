"""Orbax checkpoints of a run: keep-last-N for exact resume, plus the best by the dev metric.

A checkpoint holds the whole TrainState (params, optimizer state, step, RNG), the data position
and the resolved config. Restores go straight into the current mesh's shardings, so a run may
resume on a different device count. A checkpoint that cannot be read is skipped with a warning in
favour of the previous one. A finished run's best checkpoint restores into any mesh (`restore_best`);
reading the rest of a run directory is `xtjax.runs.info`'s job, exporting its encoder `xtjax.models.export`'s.
"""

from __future__ import annotations

import logging
from typing import Any

import jax
from etils import epath

from xtjax.errors import CheckpointError
from xtjax.io_utils import WRITE_ERRNOS, naming_errors, run_path

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

  def restore_best_params(self, target) -> tuple[Any, dict] | None:
    """(params, info) of the best checkpoint restored into `target` (ShapeDtypeStructs carrying the
    shardings), or None before one is kept."""
    ocp = _ocp()
    step = self.best.best_step()
    if step is None:
      return None
    r = self.best.restore(step, args=ocp.args.Composite(params=ocp.args.StandardRestore(target),
                                                        info=ocp.args.JsonRestore()))
    return r.params, r.info

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


# ---- reading a finished run's best checkpoint (`xtjax.runs.info.read_run` reads the rest of the run) --------


def best_step(best: epath.Path) -> int:
  """The step of the checkpoint kept in a run's `best/` folder."""
  ocp = _ocp()
  if not best.exists():
    raise CheckpointError(f"{best.parent}: no best checkpoint (expected {best}); is this a run directory?")
  mngr = ocp.CheckpointManager(best, options=ocp.CheckpointManagerOptions(create=False, read_only=True))
  step = mngr.latest_step()
  mngr.close()
  if step is None:
    raise CheckpointError(f"{best}: no checkpoint saved yet")
  return step


def param_shapes(best: epath.Path, step: int) -> dict:
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


def restore_best(run, mesh, encoder_config=None):
  """(graphdef, params) of the best TaskModel of `run` (`xtjax.runs.info.RunInfo`), every array restored
  into its sharding on `mesh`.

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
