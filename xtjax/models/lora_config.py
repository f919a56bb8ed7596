"""LoRA's configuration, apart from the adapters (`models/lora.py`) so a run's config validates before JAX loads."""

from __future__ import annotations

import dataclasses
import re

from xtjax.config import BadValue, check_min


@dataclasses.dataclass(frozen=True)
class LoraConfig:
  """Adapters on the projection weights whose paths match `targets`; only they and the base
  parameters matching `train` (the task heads) are trained, and only they carry optimizer state."""

  targets: tuple[str, ...]  # regexes (full match) over TaskModel parameter paths
  rank: int = 8
  alpha: float = 16.0  # the adapter's product is scaled by alpha / rank
  dropout: float = 0.0  # on the adapter's input only (peft's lora_dropout)
  train: tuple[str, ...] = (r"heads/.*",)  # base parameters still trained in full

  def __post_init__(self):
    check_min(self, 1, "rank")
    check_min(self, 0, "alpha", strict=True)
    if not 0.0 <= self.dropout < 1.0:
      raise BadValue("dropout", f"must be in [0, 1), got {self.dropout!r}")
    if not self.targets:
      raise BadValue("targets", "name at least one projection weight (regex over parameter paths)")
    for pattern in self.targets + self.train:
      try:
        re.compile(pattern)
      except re.error as e:
        raise BadValue("targets", f"invalid regex {pattern!r} ({e})") from e

  @property
  def scale(self) -> float:
    return self.alpha / self.rank
