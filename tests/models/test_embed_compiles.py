"""Sentence embeddings compile once per (model, layer, pooling, shape): a second language reuses them."""

import jax
import numpy as np

from xtjax.models.embed import embed_sentences
from xtjax.models.loading import load_pretrained

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


class CompileCounter:
  """Counts XLA backend compilations while active."""

  def __init__(self):
    self.count = 0

  def __call__(self, event, duration, **kwargs):
    if event == COMPILE_EVENT:
      self.count += 1

  def __enter__(self):
    jax.monitoring.register_event_duration_secs_listener(self)
    return self

  def __exit__(self, *exc):
    jax.monitoring.unregister_event_duration_listener(self)


def test_second_language_compiles_nothing(tiny_hf):
  pre = load_pretrained(tiny_hf("xlm-roberta"))
  german = ["Der Hund schläft.", "Ein kleines Haus am See.", "Guten Morgen"]
  french = ["Le chien dort.", "Une petite maison au bord du lac.", "Bonjour"]
  with CompileCounter() as first:
    de, stats_de = embed_sentences(pre, german, layer=-1, batch_size=4, max_length=32)
  with CompileCounter() as second:
    fr, stats_fr = embed_sentences(pre, french, layer=-1, batch_size=4, max_length=32)
  assert stats_de.buckets == stats_fr.buckets, (stats_de.buckets, stats_fr.buckets)
  assert first.count >= 1 and second.count == 0, (first.count, second.count)
  # The same layer by its positive index shares the program too, and the vectors do not change.
  with CompileCounter() as third:
    fr2, _ = embed_sentences(pre, french, layer=pre.config.num_layers, batch_size=4, max_length=32)
  assert third.count == 0
  np.testing.assert_array_equal(fr, fr2)
  assert de.shape == fr.shape == (3, pre.config.hidden_size)
