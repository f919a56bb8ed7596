"""What one finished phase run cost: parameters, training FLOPs (analytic, `perf/flops.py`) and device-hours.

FLOPs: the run's steps x one training step of its first trained task (3x the forward pass at the
padded length, the MFU convention; a multi-task run's other heads differ by a head's worth, negligible
next to the encoder). Device-hours: the trainer's training seconds without compilation x devices, on the
device kind it names; a resumed run counts its last attempt only (its `train_seconds`). Parameters: the exported encoder's (`<run>/model`).
"""

from __future__ import annotations

import functools
from pathlib import Path


@functools.lru_cache(maxsize=None)
def _num_params(family_name: str, config_json: str) -> int:
  import json

  import jax

  from xtjax.models import registry
  from xtjax.models.init import abstract

  family = registry.get(family_name)
  _, state = abstract(family, registry.config_from_dict(family, json.loads(config_json)))
  return int(sum(x.size for x in jax.tree.leaves(state)))


def phase_cost(run_dir: Path, summary: dict) -> dict:
  """{"family", "params", "steps", "train_flops", "device_hours"} of a finished run."""
  import json

  from xtjax.runs.info import read_run_config
  from xtjax.models import registry, store
  from xtjax.models.heads import head_kind
  from xtjax.perf import flops
  from xtjax.tasks import registry as task_registry

  cfg = read_run_config(run_dir)
  family, enc = store.read_meta(run_dir / "model")
  trained = [task_registry.get(t.name) for t in cfg.tasks]
  trained = [t for t in trained if t.head_type != "retrieval"]
  steps = int(summary.get("step") or 0)
  per_step = 0
  if trained and steps:
    task, length, batch = trained[0], cfg.features.max_length, cfg.batch_size
    target = cfg.features.max_target_length if head_kind(task.head_type).seq2seq else 0  # text-to-text
    per_step = flops.train_flops(enc, batch, length, task.head_type, _labels(task), target_len=target)
  # Measured device time: the training loop's wall clock less its compilation (each task's first step and the
  # dev programs, `compile_seconds` in summary.json; absent in runs older than that key: counted in).
  compile_s = float(summary.get("compile_seconds") or 0.0)
  seconds = max(float(summary.get("train_seconds") or 0.0) - compile_s, 0.0)
  devices = int(summary.get("device_count") or 1)
  # The model family as the report groups it (xlm-roberta, bert, mt5, ...): the Hugging Face model type.
  return {"family": enc.model_type or family.name, "params": _num_params(family.name, json.dumps(registry.config_to_dict(enc),
                                                                               sort_keys=True)),
          "steps": steps, "train_flops": float(per_step * steps),
          "device_hours": seconds * devices / 3600, "compile_seconds": compile_s,
          "device_kind": summary.get("device_kind"), "device_count": devices}


def _labels(task) -> int:
  try:
    return int(task.num_labels)
  except (TypeError, ValueError, AttributeError):  # a label set read from data (ccg): the head is negligible
    return 2
