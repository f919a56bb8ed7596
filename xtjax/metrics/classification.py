"""Accuracy and XTREME's per-language averaging (XNLI, PAWS-X, XCOPA, Tatoeba predictions)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from xtjax.errors import DataError


def accuracy(predictions: Sequence, labels: Sequence) -> float:
  """Percentage of predictions equal to their label (XTREME `evaluate.accuracy`)."""
  if len(predictions) != len(labels):
    raise DataError(f"accuracy: {len(predictions)} predictions for {len(labels)} labels")
  if not predictions:
    raise DataError("accuracy: no examples")
  correct = sum(int(p == l) for p, l in zip(predictions, labels))
  return 100.0 * correct / len(predictions)


def average_over_languages(per_lang: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
  """Mean of each metric over the languages that report it, e.g.
  {"de": {"f1": 80.}, "es": {"f1": 70.}} -> {"f1": 75.}. Languages are weighted equally, as in
  XTREME's `avg_<metric>` columns, whatever their number of examples.
  """
  if not per_lang:
    raise DataError("average_over_languages: no languages")
  values: dict[str, list[float]] = {}
  for scores in per_lang.values():
    for metric, value in scores.items():
      values.setdefault(metric, []).append(value)
  return {metric: sum(vs) / len(vs) for metric, vs in values.items()}
