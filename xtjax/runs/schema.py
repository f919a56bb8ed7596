"""The typed schema of a training run (one phase), loaded from YAML by `xtjax.config.load`."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from xtjax.config import BadValue, check_min
from xtjax.data.sources import DataSource
from xtjax.models.lora_config import LoraConfig
from xtjax.parallel.mesh_config import MeshConfig
from xtjax.tasks.base import FeatureSettings


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Start order (printed at start): resume from the run directory > `init_from` checkpoint >
  `pretrained` weights > a `preset` from scratch."""

  pretrained: str | None = None  # Hugging Face folder / hub id / xtjax model folder
  preset: str | None = None  # e.g. xlmr-base, for training from scratch
  config_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)  # e.g. {dropout_rate: 0.0}
  tokenizer: str | None = None  # tokenizer folder when it is not inside `pretrained`
  dtype: Literal["float32", "bfloat16"] = "float32"  # compute dtype
  param_dtype: Literal["float32", "bfloat16"] = "float32"  # master weights

  def __post_init__(self):
    if not self.pretrained and not self.preset:
      raise ValueError("model: set `pretrained` (checkpoint) or `preset` (from scratch)")


@dataclasses.dataclass(frozen=True)
class TaskConfig:
  name: str
  data: DataSource = DataSource()
  eval_data: DataSource | None = None  # zero-shot evaluation files, when they differ from `data`
  weight: float | None = None  # this task's share of training steps, in (0, 1]; others split the rest by `sampling`
  train_split: str = "train"
  dev_split: str = "dev"
  dev_language: str = "en"
  eval_split: str = "test"
  eval_languages: tuple[str, ...] | None = None  # None: the benchmark's list for this task, or none


@dataclasses.dataclass(frozen=True)
class OptimConfig:
  optimizer: Literal["adamw", "adafactor"] = "adamw"  # adafactor: mT5's (weight_decay 0, constant 1e-3)
  learning_rate: float = 1e-5
  weight_decay: float = 0.01
  b1: float = 0.9
  b2: float = 0.999
  eps: float = 1e-8
  schedule: Literal["linear", "constant"] = "linear"  # linear warm-up then linear decay, or constant (mT5)
  warmup_ratio: float = 0.1
  warmup_steps: int | None = None  # overrides warmup_ratio
  max_grad_norm: float | None = 1.0
  grad_accum_steps: int = 1
  layerwise_lr_decay: float | None = None  # lr * decay**(depth from the top) per encoder layer
  freeze: tuple[str, ...] = ()  # regexes over parameter paths ("encoder/embeddings/.*")
  no_decay: tuple[str, ...] = (r".*bias", r".*norm/.*", r".*_bias")  # no weight decay here

  def __post_init__(self):
    check_min(self, 1, "grad_accum_steps")
    check_min(self, 0, "learning_rate", "weight_decay", "warmup_steps", "b1", "b2", "max_grad_norm")  # 0: no clipping
    check_min(self, 0, "eps", "layerwise_lr_decay", strict=True)
    if not 0.0 <= self.warmup_ratio <= 1.0:
      raise BadValue("warmup_ratio", f"must be in [0, 1], got {self.warmup_ratio!r}")


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
  every_steps: int = 500
  keep: int = 2  # last N for resume; the best (by the dev metric) is kept separately
  async_save: bool = True

  def __post_init__(self):
    check_min(self, 1, "every_steps", "keep")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  model: ModelConfig
  tasks: tuple[TaskConfig, ...]
  name: str = "run"
  init_from: str | None = None  # a run directory or xtjax model folder whose ENCODER starts this run
  # init_from a LoRA run: start from its `merged` weights, or from its base weights plus its `adapters`
  # (trained on; needs the same lora targets and rank). Required when that run has adapters.
  init_from_lora: Literal["merged", "adapters"] | None = None
  lora: LoraConfig | None = None  # LoRA adapters instead of full fine-tuning (xtjax.models.lora)
  benchmark: Literal["xtreme", "xtreme-r"] = "xtreme"
  features: FeatureSettings = FeatureSettings()
  batch_size: int = 32  # global, per optimizer step (split over grad_accum_steps micro-batches)
  eval_batch_size: int = 64
  epochs: float = 3.0
  steps: int | None = None  # overrides epochs
  sampling: Literal["proportional", "capped", "temperature", "uniform"] = "proportional"
  sampling_cap: int = 20000  # capped: examples per task counted at most this many
  sampling_temperature: float = 2.0
  eval_every: int = 0  # dev evaluation every N steps (0: at the end of every epoch)
  log_every: int = 10
  report_to: tuple[Literal["tensorboard", "wandb"], ...] = ("tensorboard",)  # trackers besides metrics.jsonl
  seed: int = 0
  # Dropout masks: JAX's "threefry2x32", or "hash" (xtjax.models.prng: ~20% faster steps on CPU,
  # mesh-independent like threefry; opt-in until it has been compared on real tasks).
  dropout_rng: Literal["hash", "threefry2x32"] = "threefry2x32"
  optim: OptimConfig = OptimConfig()
  checkpoint: CheckpointConfig = CheckpointConfig()
  mesh: MeshConfig = MeshConfig()
  rules: tuple[tuple[str, Any], ...] | None = None  # logical-axis rules table (None: defaults)
  zero_shot: bool = True  # at the end, evaluate the best checkpoint in every language
  cache_dir: str | None = None  # tokenised-feature cache (None: <workdir>/../.feature_cache)
  retrieval_layer: int | None = None  # hidden_states index for retrieval tasks (None: task default)

  def __post_init__(self):
    check_min(self, 1, "batch_size", "eval_batch_size", "steps", "log_every", "sampling_cap")
    check_min(self, 0, "eval_every")
    check_min(self, 0, "epochs", "sampling_temperature", strict=True)
    if not self.tasks:
      raise ValueError("tasks: at least one task is required")
    if self.batch_size % self.optim.grad_accum_steps:
      raise ValueError(f"batch_size {self.batch_size} is not divisible by optim.grad_accum_steps "
                       f"{self.optim.grad_accum_steps}")
    shares = [t.weight for t in self.tasks if t.weight is not None]
    if any(not 0.0 < w <= 1.0 for w in shares) or sum(shares) > 1.0 + 1e-9:
      raise ValueError(f"tasks[].weight: shares of steps in (0, 1] summing to at most 1, got {shares}")
    names = [t.name for t in self.tasks]
    if len(set(names)) != len(names):
      raise ValueError(f"tasks: duplicate task names {names}")
