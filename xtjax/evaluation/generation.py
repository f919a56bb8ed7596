"""Evaluation by generation for text-to-text tasks: greedy decoding on the jitted inference path
(`xtjax.models.generate.generate_texts`, the one `xtjax generate` runs: bucketed input lengths,
compiled once per bucket), then the base task's official metric on the parsed outputs.

Inputs are truncated to `features.max_length` tokens, as in training; at most
`features.max_target_length` tokens are generated.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from xtjax.models.generate import generate_texts
from xtjax.tasks.base import Features, FeatureSettings
from xtjax.tasks.text_to_text import GeneratedPredictions, TextToTextTask


@dataclasses.dataclass
class GenerationEval:
  scores: dict[str, float]
  predictions: GeneratedPredictions
  stats: dict[str, Any]  # generate_texts' counts and speed


def evaluate_by_generation(seq2seq_model, tokenizer, task: TextToTextTask, examples: Sequence[Any], language: str,
                           settings: FeatureSettings, batch_size: int = 16) -> GenerationEval:
  """Scores `examples` of one language. `seq2seq_model` is the encoder-decoder itself (a `T5`, e.g.
  `TaskModel.encoder`)."""
  prompts = [text for text, _ in task.pairs(examples)]
  results, stats = generate_texts(seq2seq_model, tokenizer, prompts, max_new_tokens=settings.max_target_length,
                                  batch_size=batch_size, max_length=settings.max_length)
  features = Features({}, np.arange(len(examples)))
  predictions = task.predict([r["output"] for r in results], features, examples, settings)
  return GenerationEval(task.score(predictions, examples, language), predictions, stats)
