"""Sentence embeddings compile once per (model, layer, pooling, shape): a second language reuses them."""

import dataclasses

import jax
import numpy as np

from xtjax.models.embed import embed_sentences
from xtjax.models.init import abstract
from xtjax.models.loading import load_pretrained

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"  # the tests' persistent cache may serve a program


class CompileCounter:
  """Counts executables built while active: XLA compilations plus persistent-cache loads."""

  def __init__(self):
    self.count = 0

  def _duration(self, event, duration, **kwargs):
    self.count += event == COMPILE_EVENT

  def _event(self, event, **kwargs):
    self.count += event == CACHE_HIT_EVENT

  def __enter__(self):
    jax.monitoring.register_event_duration_secs_listener(self._duration)
    jax.monitoring.register_event_listener(self._event)
    return self

  def __exit__(self, *exc):
    jax.monitoring.unregister_event_duration_listener(self._duration)
    jax.monitoring.unregister_event_listener(self._event)


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
  # The same layer by its positive index, with a graphdef built afresh (as the trainer's encoder view
  # is, once per language), shares the program too, and the vectors do not change.
  fresh = dataclasses.replace(pre, graphdef=abstract(pre.family, pre.config)[0])
  with CompileCounter() as third:
    fr2, _ = embed_sentences(fresh, french, layer=pre.config.num_layers, batch_size=4, max_length=32)
  assert third.count == 0
  np.testing.assert_array_equal(fr, fr2)
  assert de.shape == fr.shape == (3, pre.config.hidden_size)
