"""Published results (`published_results.yaml`: each number with its paper and table) beside a sweep's measured
settings of the same task and metric, with the difference, so a reader sees how far a run is from the literature."""

from __future__ import annotations

import functools
from importlib import resources

from xtjax.errors import ConfigError

FIELDS = ("model", "task", "metric", "value", "source")


@functools.cache
def published() -> tuple[dict, ...]:
  """The shipped table; a row without a source (or any field) is an error naming it."""
  import yaml

  text = resources.files("xtjax.experiments").joinpath("published_results.yaml").read_text()
  rows = yaml.safe_load(text) or []
  for i, row in enumerate(rows):
    missing = [f for f in FIELDS if not row.get(f) and row.get(f) != 0]
    if missing:
      raise ConfigError(f"xtjax/experiments/published_results.yaml: row {i}: missing {', '.join(missing)}")
  return tuple(rows)


def beside(settings) -> tuple[list[str], list[list[str]]] | None:
  """(head, rows): per published number whose task and metric a setting measured, the best setting's mean beside
  it; None when the sweep measured none of them."""
  lines = []
  for row in published():
    mine = [st for st in settings if st.task == row["task"] and st.metric == row["metric"]]
    if not mine:
      continue
    best = max(mine, key=lambda st: st.score.mean)
    lines.append([row["task"], row["metric"], f"{row['value']:.1f}", row["model"], row["source"], best.label,
                  best.score.fmt(1), f"{best.score.mean - row['value']:+.1f}"])
  head = ["task", "metric", "published", "published model", "source", "best setting here", "measured", "difference"]
  return (head, lines) if lines else None
