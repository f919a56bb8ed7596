"""Reading a finished (or running) training run for inference, without the training package.

A run directory holds `config.yaml` (the resolved training config), `best/` (Orbax manager whose
item `params` is the TaskModel state: `encoder/...` and `heads/<task>/...`) and, once finished,
`model/` (an xtjax model folder of the encoder with its tokenizer). The encoder config comes from
`model/` when present, else from the config's model source; head types come from the task
registry, label counts and the pooler from the checkpoint's own metadata.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax

from xtjax.checkpoint import abstract_like
from xtjax.infer.build import abstract_task_model
from xtjax.errors import CheckpointError, ConfigError
from xtjax.models import hf_io, registry, store
from xtjax.models.heads import HEAD_TYPES, HeadConfig
from xtjax.parallel.rules import DEFAULT_RULES, Rules, rules_from_config, state_shardings


@dataclasses.dataclass
class RunSpec:
  run_dir: Path
  family: registry.Family
  encoder_config: Any
  heads: dict[str, HeadConfig]
  rules: Rules
  features: Any  # xtjax.tasks.base.FeatureSettings
  best_dir: Path
  best_step: int
  tokenizer_dir: Path | None
  mesh: Any = None  # inference uses its own mesh (default: every device data-parallel)
  embedding_tasks: tuple[str, ...] = ()  # retrieval tasks: no head, sentence embeddings

  def load_tokenizer(self):
    return hf_io.load_tokenizer(self.tokenizer_dir) if self.tokenizer_dir is not None else None


def _ocp():
  import orbax.checkpoint as ocp

  return ocp


def _best(run_dir: Path) -> tuple[Path, int]:
  ocp = _ocp()
  best = (run_dir / "best").absolute()
  if not best.exists():
    raise CheckpointError(f"{run_dir}: no best checkpoint (expected {best}); is this a run directory?")
  mngr = ocp.CheckpointManager(best, options=ocp.CheckpointManagerOptions(create=False, read_only=True))
  step = mngr.latest_step()
  mngr.close()
  if step is None:
    raise CheckpointError(f"{best}: no checkpoint saved yet")
  return best, step


def _param_shapes(best: Path, step: int) -> dict:
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


def _encoder_config(run_dir: Path, model: dict, init_from: str | None) -> tuple[registry.Family, Any, Path | None]:
  """(family, encoder config, tokenizer folder) in the trainer's start order."""
  if store.is_model_dir(run_dir / "model"):
    family, cfg = store.read_meta(run_dir / "model")
    return family, cfg, store.tokenizer_dir(run_dir / "model")
  src = None
  if init_from:
    p = Path(init_from)
    src = p if store.is_model_dir(p) else p / "model"
  elif model.get("pretrained"):
    src = hf_io.resolve(model["pretrained"])
  if src is not None and store.is_model_dir(src):
    family, cfg = store.read_meta(src)
    tok = store.tokenizer_dir(src)
  elif src is not None:
    hf = hf_io.read_config(src)
    family = registry.for_hf_model_type(hf["model_type"], where=str(src / "config.json"))
    cfg, tok = family.config_from_hf(hf), (src if hf_io.has_tokenizer(src) else None)
  elif model.get("preset"):
    family, cfg = registry.preset(model["preset"])
    tok = None
  else:
    raise ConfigError(f"{run_dir / 'config.yaml'}: model: neither pretrained nor preset")
  changes = {k: model[k] for k in ("dtype", "param_dtype") if model.get(k)}
  changes.update(model.get("config_overrides") or {})
  try:
    cfg = dataclasses.replace(cfg, **changes)
  except (TypeError, ValueError) as e:
    raise ConfigError(f"{run_dir / 'config.yaml'}: model.config_overrides: {e}") from e
  return family, cfg, tok


def read_run(run_dir: str | Path) -> RunSpec:
  import yaml

  from xtjax.tasks import registry as task_registry
  from xtjax.tasks.base import FeatureSettings

  run_dir = Path(run_dir).absolute()
  cfg_path = run_dir / "config.yaml"
  if not cfg_path.exists():
    raise ConfigError(f"{cfg_path}: missing; expected a run directory written by `xtjax train`")
  conf = yaml.safe_load(cfg_path.read_text()) or {}
  model = conf.get("model") or {}
  family, enc_cfg, tok_dir = _encoder_config(run_dir, model, conf.get("init_from"))
  if model.get("tokenizer"):
    tok_dir = hf_io.resolve(model["tokenizer"])
  best, step = _best(run_dir)
  shapes = _param_shapes(best, step)
  if hasattr(enc_cfg, "pooler"):  # the checkpoint decides (HF base models may lack one)
    enc_cfg = dataclasses.replace(enc_cfg, pooler="pooler" in shapes.get("encoder", {}))
  heads, embedding = {}, []
  for t in conf.get("tasks") or []:
    task = task_registry.get(t["name"])
    if task.head_type not in HEAD_TYPES:
      embedding.append(task.name)
      continue
    head_shapes = shapes.get("heads", {}).get(task.name)
    if head_shapes is None:
      raise CheckpointError(f"{best}: no parameters for the head of task {task.name!r}")
    out = _leaf_shape(head_shapes.get("out", {}).get("kernel", ()))
    num_labels = out[-1] if task.head_type in ("classification", "tagging") and out else _num_labels(task)
    heads[task.name] = HeadConfig(type=task.head_type, num_labels=int(num_labels))
  features = FeatureSettings(**(conf.get("features") or {}))
  rules = rules_from_config(conf.get("rules")) if conf.get("rules") is not None else DEFAULT_RULES
  return RunSpec(run_dir, family, enc_cfg, heads, rules, features, best, step, tok_dir,
                 embedding_tasks=tuple(embedding))


def _num_labels(task) -> int:
  try:
    return int(task.num_labels)
  except Exception:  # noqa: BLE001 - tasks whose label set comes from data (ccg) before reading it
    return 2


def restore_best(spec: RunSpec, cfg, mesh):
  """(graphdef, params) of the run's best TaskModel, every array restored into its sharding on `mesh`."""
  ocp = _ocp()
  graphdef, abstract = abstract_task_model(spec.family, cfg, spec.heads)
  target = abstract_like(abstract, state_shardings(abstract, mesh, spec.rules))
  mngr = ocp.CheckpointManager(spec.best_dir, options=ocp.CheckpointManagerOptions(create=False, read_only=True))
  try:
    restored = mngr.restore(spec.best_step, args=ocp.args.Composite(params=ocp.args.StandardRestore(target)))
  except Exception as e:  # noqa: BLE001
    raise CheckpointError(f"{spec.best_dir}: cannot restore step {spec.best_step} into the model built from "
                          f"{spec.run_dir / 'config.yaml'} ({type(e).__name__}: {str(e)[:300]})") from e
  finally:
    mngr.close()
  return graphdef, restored.params
