"""One training phase: featurise, build the sharded state, train with periodic dev evaluation,
keep the best checkpoint, survive preemption, then evaluate zero-shot in every language."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time

import jax
import numpy as np
from etils import epath

from xtjax.checkpoint import RunCheckpoints
from xtjax.data import packing
from xtjax.data.batching import DataPosition, MultiTaskStream, sampling_weights
from xtjax.data.cache import cached_shard
from xtjax.data.loader import TrainLoader, task_streams
from xtjax.data.shards import ShardSpec
from xtjax.errors import XtjaxError
from xtjax.evaluation.zero_shot import EvalModel, task_features, zero_shot
from xtjax.io_utils import as_path, run_path, write_text_atomic
from xtjax.models.export import export_encoder
from xtjax.parallel.batching import put_process_batch
from xtjax.parallel.distributed import allgather_bytes
from xtjax.parallel.mesh import make_mesh
from xtjax.parallel.rules import rules_from_config
from xtjax.parallel import peers
from xtjax.runs import identity, lease
from xtjax.runs.schema import TrainConfig
from xtjax.runs.start import ADAPTERS_DIR
from xtjax.tasks import registry as task_registry
from xtjax.tasks.featurize import merge_truncation_reports, truncation_report
from xtjax.train import setup
from xtjax.train.preemption import Preemption
from xtjax.train.logbook import Logbook
from xtjax.train.program import check_batch_sizes, run_program

log = logging.getLogger(__name__)


class TrainingDiverged(XtjaxError):
  """Loss or gradients became NaN/Inf."""


class Trainer:
  """Holds the compiled steps and state of one run; `run()` trains and evaluates."""

  def __init__(self, cfg: TrainConfig, workdir: epath.PathLike, overwrite: bool = False):
    self.cfg = cfg
    self.workdir = run_path(workdir)  # a local path or a gs:// URL (an unusable bucket fails here)
    self.config_dict = identity.resolved(cfg)
    # What the config alone decides is checked before the run directory exists; the model folder and the
    # data in `setup`, whose failure in a new run directory removes what was written: a failed start leaves
    # nothing behind, and the corrected command needs no --overwrite.
    self.mesh = make_mesh(cfg.mesh)
    self.rules = rules_from_config(cfg.rules)
    self.tasks = [task_registry.get(t.name) for t in cfg.tasks]
    # Retrieval tasks (Tatoeba, BUCC, LAReQA, Mewsli-X) have no head: the encoder is evaluated as is.
    self.train_tasks = [t for t in self.tasks if t.head_type != "retrieval"]
    check_batch_sizes(self.mesh, cfg.batch_size, cfg.optim.grad_accum_steps, cfg.eval_batch_size)
    self.cache_dir = as_path(cfg.cache_dir) if cfg.cache_dir else self.workdir.parent / ".feature_cache"
    self.ckpt = None
    self.lease = lease.acquire(self.workdir)  # one writer per run directory
    try:
      identity.claim_run_dir(self.workdir, cfg, overwrite)
      self._fresh = not (self.workdir / "config.yaml").exists()
      self._write_config()
    except BaseException:
      self.lease.release()
      raise

  def _write_config(self):
    if jax.process_index() == 0:
      import yaml

      write_text_atomic(self.workdir / "config.yaml", yaml.safe_dump(self.config_dict, sort_keys=False,
                                                                       allow_unicode=True))

  def close(self):
    """Closes the checkpoint managers and ends the lease (a run directory holding nothing else is removed)."""
    try:
      if self.ckpt is not None:
        self.ckpt.close()
    finally:
      self.lease.release()

  def setup(self):
    try:
      return self._setup()
    except BaseException:
      if self._fresh and jax.process_index() == 0:
        self._undo_start()
      raise

  def _undo_start(self):
    """Removes what a failed start wrote into a new run directory (its config, empty checkpoint folders)."""
    if self.ckpt is not None:
      self.ckpt.close()
      self.ckpt = None
    (self.workdir / "config.yaml").unlink(missing_ok=True)
    for sub in ("checkpoints", "best"):
      folder = self.workdir / sub
      if folder.exists() and not any(folder.iterdir()):
        folder.rmdir()

  def _setup(self):
    cfg = self.cfg
    t0 = time.time()
    start = setup.encoder_start(cfg, self.mesh, self.rules)
    self.start, self.tokenizer = start, start.tokenizer
    settings = cfg.features
    self.train_sets, self.dev_sets, self.truncation = {}, {}, {}
    # Each process featurises only its example shards of a training split (xtjax.data.shards).
    spec = ShardSpec(cfg.batch_size, jax.process_index(), jax.process_count())
    for task, tcfg in zip(self.tasks, cfg.tasks):
      if task not in self.train_tasks:
        continue
      shard = cached_shard(task, tcfg.train_split, "en", tcfg.data, self.tokenizer, settings, self.cache_dir, spec)
      if len(shard.features) == 0:
        raise XtjaxError(f"task {task.name!r}: no training features (split {tcfg.train_split!r})")
      num_examples, features, padding = len(np.unique(shard.example_ids)), shard.features, None
      if settings.pack:
        packing.check_packable(task.name, task.head_type, start.config.kind)
        shard, padding = packing.pack_shard(shard, self.tokenizer.pad_token_id)
      self.train_sets[task.name] = shard
      self._report_truncation(task, tcfg.train_split, num_examples, features, padding)
      try:
        # this process's share of the dev examples (xtjax.evaluation.shares)
        share = task_features(task, tcfg, tcfg.dev_split, tcfg.dev_language, self.tokenizer, settings, self.cache_dir)
        self.dev_sets[task.name] = share
        self._report_truncation(task, tcfg.dev_split, len(share.example_ids), share.features)
      except XtjaxError as e:
        log.warning("task %s: no dev set (%s); model selection uses the last checkpoint", task.name, e)
    streams = task_streams([self.train_sets[t.name] for t in self.train_tasks], cfg.batch_size, cfg.seed)
    sizes = {s.name: s.num_rows for s in streams}
    weights = sampling_weights(sizes, cfg.sampling, cfg.sampling_cap, cfg.sampling_temperature,
                               {t.name: t.weight for t in cfg.tasks if t.name in sizes})
    self.stream = MultiTaskStream(streams, weights, cfg.seed)
    self.loader = TrainLoader(self.stream, lambda batch: put_process_batch(batch, self.mesh, self.rules))
    self.steps_per_epoch = max(1, sum(s.batches_per_epoch for s in streams))
    if not streams:  # evaluation-only phase (e.g. Tatoeba / BUCC straight from the encoder)
      self.total_steps = 0
    else:
      self.total_steps = cfg.steps if cfg.steps is not None else max(1, math.ceil(cfg.epochs * self.steps_per_epoch))
    # The model, optimizer, shardings and steps: what `xtjax plan` and `bench train` build too.
    self.program = run_program(cfg, start.family, start.config, setup.head_configs(self.train_tasks), self.mesh,
                               self.rules, self.total_steps)
    self.eval_model = EvalModel.build(start.family, start.config, self.program.graphdef, self.tokenizer, cfg,
                                      self.mesh, self.rules, f"run:{self.workdir}")
    self.state = self.program.init_state(self.program.initial_params(start))
    peers.progress.checkpoints = self.workdir / "checkpoints"
    self.ckpt = RunCheckpoints(self.workdir, cfg.checkpoint.keep, cfg.checkpoint.async_save)
    self.position = DataPosition()
    restored = self.ckpt.restore_latest(self.program.abstract_state)
    if restored is not None:
      self.state, data, step = restored
      self.position = self.loader.resume(data)
      self.start_how = f"resumed from {self.workdir / 'checkpoints'} at step {step}"
    else:
      self.start_how = start.source
    self._train_steps = {}
    log.info("start: %s; %d tasks, %d steps (%d per epoch), mesh %s, set-up %.1fs", self.start_how,
             len(self.tasks), self.total_steps, self.steps_per_epoch, dict(self.mesh.shape), time.time() - t0)
    return self

  def _report_truncation(self, task, split: str, num_examples: int, features, padding=None):
    """Logs and records (summary.json `truncation`) how often featurisation cut inputs and targets (and,
    packing, the padding before and after); with several processes, each featurised its own share, and
    the record is the sum over them (every process calls this for the same splits in the same order)."""
    report = truncation_report(num_examples, features, padding)
    if jax.process_count() > 1:
      report = merge_truncation_reports([json.loads(b) for b in allgather_bytes(json.dumps(report).encode())])
    self.truncation.setdefault(task.name, {})[split] = report
    log.info("task %s %s: truncation %s", task.name, split, json.dumps(report))
    if report.get("truncated_targets"):
      log.warning("task %s %s: %d of %d targets cut to features.max_target_length=%d (trained on cut targets)",
                  task.name, split, report["truncated_targets"], report["features"],
                  self.cfg.features.max_target_length)

  # ----------------------------------------------------------------------------------------------
  def train_step_for(self, task):
    if task.name not in self._train_steps:
      self._train_steps[task.name] = self.program.train_step(task.name)
    return self._train_steps[task.name]

  def evaluate_dev(self, params) -> dict:
    out = {}
    for task in self.train_tasks:
      if task.name not in self.dev_sets:
        continue
      out[task.name], _ = self.eval_model.evaluate(task, self.dev_sets[task.name], params, "en")
    return out

  def dev_score(self, dev: dict) -> float:
    vals = [dev[t.name][t.main_metric] for t in self.train_tasks if t.name in dev]
    return float(np.mean(vals)) if vals else float("nan")

  # ----------------------------------------------------------------------------------------------
  def run(self, stop_after_steps: int | None = None) -> dict:
    """Trains to the end (or until SIGTERM / `stop_after_steps`, which simulate preemption)."""
    cfg = self.cfg
    book = Logbook(self.workdir, cfg.report_to, self.config_dict)
    task_by_name = {t.name: t for t in self.tasks}
    eval_every = cfg.eval_every or self.steps_per_epoch
    status = "finished"
    pending = None  # metrics fetched one step late, so the host never waits on the device
    started = time.time()
    self.compile_seconds = -self.eval_model.programs.stats.compile_seconds  # + the dev programs compiled below
    first_step = self.position.step
    progress = _progress(self.total_steps, first_step)
    # The handlers stay installed through the final save: a second signal cannot cut it short. The bar
    # is closed on an error too, so its line ends before the error's.
    with Preemption() as pre, contextlib.closing(progress):
      it = self.loader.iterate(self.position.step, self.total_steps)
      while self.position.step < self.total_steps:
        peers.progress.step = self.position.step + 1  # the step being run (for the dead-peer line)
        name, batch, next_pos = next(it)
        task = task_by_name[name]
        fresh, t_step = name not in self._train_steps, time.time()
        self.state, metrics = self.train_step_for(task)(self.state, batch)
        if fresh:  # a task's first step compiles it: timed apart (summary.json's compile_seconds), not in the ETA
          jax.block_until_ready(metrics)
          self.compile_seconds += time.time() - t_step
          progress.compiled()
        if pending is not None:
          self._log_train(book, progress, *pending)
        pending = (self.position.step + 1, name, metrics)
        self.position = next_pos
        step = self.position.step
        if step % eval_every == 0 or step == self.total_steps:
          self._log_train(book, progress, *pending)
          pending = None
          self._eval_and_keep_best(book, step)
        if step % cfg.checkpoint.every_steps == 0 and step < self.total_steps:
          self._save(step)
        if pre.should_stop() or (stop_after_steps is not None and step - first_step >= stop_after_steps):
          if step < self.total_steps:
            status = "preempted"
            break
      peers.progress.step = self.position.step
      if pending is not None:
        self._log_train(book, progress, *pending)
      it.close()  # stops the loader's prefetch thread
      progress.close()
      self._save(self.position.step, force=True)
      self.ckpt.wait()
    elapsed = time.time() - started
    self.compile_seconds += self.eval_model.programs.stats.compile_seconds
    if status == "preempted":
      book.close()
      log.info("preempted at step %d: checkpoint saved in %s; run the same command again to resume",
                  self.position.step, self.workdir / "checkpoints")
      return {"status": "preempted", "step": self.position.step}
    summary = self._finish(book, elapsed, self.position.step - first_step)
    book.close()
    return summary

  def _log_train(self, book, progress, step, name, metrics):
    m = {k: float(v) for k, v in jax.device_get(metrics).items()}
    if not m.pop("finite"):
      raise TrainingDiverged(f"step {step}: loss or gradients are NaN/Inf (task {name}); the last good checkpoint "
                             f"is in {self.workdir / 'checkpoints'}")
    m["learning_rate"] = float(self.program.schedule(step - 1))
    progress.update(step, m["loss"])
    if step % self.cfg.log_every == 0 or step == self.total_steps:
      book.write(step, f"train/{name}", m)

  def _save(self, step: int, force: bool = False):
    self.ckpt.save(step, self.state, self.position.to_json(), self.config_dict, force=force)

  def _eval_and_keep_best(self, book, step):
    dev = self.evaluate_dev(self.state.params)
    for name, scores in dev.items():
      book.write(step, f"dev/{name}", scores)
    score = self.dev_score(dev) if dev else float(step)  # no dev set: the latest is the best
    best = self.ckpt.best_score()
    if best is None or score > best or (math.isnan(best) and not math.isnan(score)):
      self.ckpt.save_best(step, self.state.params, score, {"step": step, "score": score, "dev": dev})
    log.info("step %d dev %s (best %s)", step, json.dumps(dev), best)

  def best_params(self):
    """(params, info) of the best checkpoint; the current params and None before one is kept."""
    best = self.ckpt.restore_best_params(self.program.abstract_state.params)
    return best if best is not None else (self.state.params, None)

  def zero_shot(self, params) -> dict:
    """{task: {language: scores}} in every configured language; predictions go to `<run>/predictions`."""
    if not self.cfg.zero_shot:
      return {}
    out_dir = self.workdir / "predictions" if jax.process_index() == 0 else None
    return zero_shot(self.eval_model, self.cfg, params, self.cache_dir, out_dir)

  def _finish(self, book, elapsed, steps_run: int) -> dict:
    params, info = self.best_params()
    zs = self.zero_shot(params)
    for name, per_lang in zs.items():
      for lang, scores in per_lang.items():
        book.write(self.position.step, f"zero_shot/{name}/{lang}", scores)
    features_per_s = steps_run * self.cfg.batch_size / max(elapsed, 1e-9)
    n_ex = sum(s.num_examples for s in self.train_sets.values())
    n_feat = sum(s.num_rows for s in self.stream.streams.values())
    summary = {"status": "finished", "step": self.position.step, "start": self.start_how,
               "config_hash": identity.config_hash(self.config_dict),
               "best": info, "zero_shot": zs, "train_seconds": round(elapsed, 2), "truncation": self.truncation,
               # of train_seconds: each task's first (compiling) step and the dev programs' compilation
               "compile_seconds": round(self.compile_seconds, 2),
               "device_count": jax.device_count(), "device_kind": jax.devices()[0].device_kind,
               # a QA example may give several windows: rows trained on per second, and examples per second
               "features_per_second": round(features_per_s, 2),
               "input_wait_seconds": round(self.loader.wait_total, 2),  # the loop waiting for batches
               "examples_per_second": round(features_per_s * n_ex / max(n_feat, 1), 2)}
    export_encoder(self.workdir / "model", self.start.family, self.start.config, params, self.tokenizer,
                   self.cfg.lora, self.workdir / ADAPTERS_DIR, self.start.base)
    if jax.process_index() == 0:
      write_text_atomic(self.workdir / "zero_shot.json", json.dumps(zs, indent=2, sort_keys=True) + "\n")
      write_text_atomic(self.workdir / "summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


class _progress:
  """A tqdm bar with step, loss and examples/s (quiet on non-zero processes)."""

  def __init__(self, total, initial):
    self.bar = None
    if total == 0:  # an evaluation-only phase (retrieval): no bar of 0 steps
      log.info("evaluation only: no training steps")
    elif jax.process_index() == 0:
      from tqdm import tqdm

      self.bar = tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True)
    self.last = initial

  def update(self, step, loss):
    if self.bar is not None:
      self.bar.update(max(0, step - self.last))
      self.bar.set_postfix(loss=f"{loss:.4f}")
    self.last = step

  def compiled(self):
    """A step finished compiling: its time leaves the rate and the ETA (tqdm's timer restarts)."""
    if self.bar is not None:
      self.bar.unpause()

  def close(self):
    if self.bar is not None:
      self.bar.close()


def train(cfg: TrainConfig, workdir: epath.PathLike, stop_after_steps: int | None = None, overwrite: bool = False) -> dict:
  """Runs one phase in `workdir` (resuming if it has checkpoints of the same config). Returns the summary.

  A `workdir` holding a different config is an error naming the keys, unless `overwrite` (start afresh)."""
  trainer = Trainer(cfg, workdir, overwrite)
  try:
    return trainer.setup().run(stop_after_steps)
  finally:
    trainer.close()


