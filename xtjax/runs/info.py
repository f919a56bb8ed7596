"""Reading a run directory: the one way train, infer and cli see a run (its config, encoder, heads, best step)."""

from __future__ import annotations

import dataclasses
from typing import Any

from etils import epath

from xtjax import config as config_lib
from xtjax.checkpoint import best_step, param_shapes
from xtjax.errors import CheckpointError, ConfigError
from xtjax.io_utils import as_path, run_path
from xtjax.models import hf_io, store
from xtjax.models.heads import HEAD_TYPES, HeadConfig
from xtjax.runs import start
from xtjax.runs.schema import TaskConfig, TrainConfig


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
  best = run_dir / "best"
  step = best_step(best)
  shapes = param_shapes(best, step)
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
