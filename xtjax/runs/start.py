"""The fixed start order of a run's encoder: resume from the run directory > `init_from` checkpoint >
`pretrained` weights > a `preset` from scratch.

Training loads the weights of the chosen source; reading a run for inference needs only its config.
Both resolve the source here, so they can never disagree.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from etils import epath

from xtjax.errors import CheckpointError, ConfigError
from xtjax.io_utils import as_path
from xtjax.models import hf_io, registry, store
from xtjax.runs.schema import ModelConfig, TrainConfig

ADAPTERS_DIR = "adapters"  # <run>/adapters: a LoRA run's adapters (xtjax.models.store.save_adapters)


@dataclasses.dataclass(frozen=True)
class EncoderSource:
  """Where a run's encoder starts (after resuming, which the run directory decides)."""

  kind: Literal["init_from", "pretrained", "preset"]
  location: str  # xtjax model folder (init_from), HF folder / hub id (pretrained), preset name
  adapters: str | None = None  # LoRA adapters folder trained on these weights (`init_from_lora: adapters`)

  def describe(self) -> str:
    where = f"scratch (preset {self.location})" if self.kind == "preset" else f"{self.kind} {self.location}"
    return where + (f" + LoRA adapters {self.adapters}" if self.adapters else "")

  def base(self) -> dict:
    """What a LoRA run records as the base weights of its adapters."""
    return {"kind": self.kind, "location": self.location}


def resolve_init_from(path: epath.PathLike) -> epath.Path:
  """A run directory means its exported `model/` folder; an xtjax model folder is used as is."""
  p = as_path(path)
  if store.is_model_dir(p):
    return p
  if store.is_model_dir(p / "model"):
    return p / "model"
  raise CheckpointError(f"init_from {path}: neither an xtjax model folder nor a finished run directory "
                        f"(no {p / 'model' / store.MARKER})")


def _lora_source(cfg: TrainConfig) -> EncoderSource | None:
  """`init_from` a LoRA run: None for its merged weights (`<run>/model`), else its base plus adapters."""
  adapters = as_path(cfg.init_from) / ADAPTERS_DIR
  has = (adapters / store.ADAPTERS_MARKER).exists()
  if has and cfg.init_from_lora is None:
    raise ConfigError(f"init_from {cfg.init_from}: a LoRA run ({adapters}); set init_from_lora to 'merged' "
                      "(start from its merged weights) or 'adapters' (its base weights plus its adapters)")
  if cfg.init_from_lora != "adapters":
    return None
  if not has:
    raise ConfigError(f"init_from_lora: adapters, but init_from {cfg.init_from} has no LoRA adapters "
                      f"({adapters / store.ADAPTERS_MARKER} missing)")
  base = store.read_adapters_meta(adapters)["base"]
  if base["kind"] == "preset":
    raise ConfigError(f"init_from_lora: adapters: {adapters} were trained on a randomly initialised preset "
                      f"({base['location']}), whose weights were not saved; use init_from_lora: merged")
  return EncoderSource(base["kind"], base["location"], str(adapters))


def encoder_source(cfg: TrainConfig) -> EncoderSource:
  if cfg.init_from:
    return _lora_source(cfg) or EncoderSource("init_from", str(resolve_init_from(cfg.init_from)))
  if cfg.model.pretrained:
    return EncoderSource("pretrained", cfg.model.pretrained)
  return EncoderSource("preset", cfg.model.preset)


def configure_encoder(enc_cfg, model: ModelConfig, where: str = "model"):
  """The encoder config with the run's dtypes and `config_overrides` applied."""
  changes = {"dtype": model.dtype, "param_dtype": model.param_dtype, **model.config_overrides}
  try:
    return dataclasses.replace(enc_cfg, **changes)
  except (TypeError, ValueError) as e:
    raise ConfigError(f"{where}: model.config_overrides: {e}") from e


def encoder_config(source: EncoderSource) -> tuple[registry.Family, Any, epath.PathLike | None]:
  """(family, encoder config as stored, tokenizer folder or None) of a source, reading no weights."""
  if source.kind == "preset":
    family, cfg = registry.preset(source.location)
    return family, cfg, None
  folder = as_path(source.location) if source.kind == "init_from" else hf_io.resolve(source.location)
  if store.is_model_dir(folder):
    family, cfg = store.read_meta(folder)
    return family, cfg, store.tokenizer_dir(folder)
  hf = hf_io.read_config(folder)
  family = registry.for_hf_model_type(hf["model_type"], where=str(folder / "config.json"))
  return family, family.config_from_hf(hf), (folder if hf_io.has_tokenizer(folder) else None)


def tokenizer_override(model: ModelConfig) -> Path | None:
  """`model.tokenizer`, when set, replaces the source's tokenizer."""
  return hf_io.resolve(model.tokenizer) if model.tokenizer else None
