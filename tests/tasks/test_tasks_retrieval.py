"""Retrieval tasks: Tatoeba, BUCC (dev-tuned threshold), LAReQA and Mewsli-X with controlled
embeddings, and real Tatoeba with random embeddings and a tiny model."""

import zlib

import numpy as np
import pytest

from tasks_support import SHARED_DATA, unigram, write
from xtjax.data.sources import DataSource
from xtjax.errors import DataError
from xtjax.tasks import registry
from xtjax.tasks.base import FeatureSettings
from xtjax.tasks.retrieval import default_retrieval_layer, evaluate_retrieval


def keyed_embedder(groups: dict[str, int], dim: int = 16, seed: int = 0, noise: float = 0.0):
  """texts -> vectors: texts of the same group share a random direction; others get their own."""
  rng = np.random.default_rng(seed)
  base = rng.normal(size=(64, dim))
  calls = []

  def embed(texts):
    calls.append(len(texts))
    out = []
    for t in texts:
      g = groups.get(t)
      v = base[g] if g is not None else np.random.default_rng(zlib.crc32(t.encode())).normal(size=dim)
      out.append(v + noise * rng.normal(size=dim))
    return np.stack(out).astype(np.float32)

  embed.calls = calls
  return embed


def _tatoeba(tmp_path):
  deu = ["Hallo Welt.", "Der Hund.", "Die Katze.", "Ja.", "Nein."]
  eng = ["Hello world.", "The dog.", "The cat.", "Yes.", "No."]
  write(tmp_path, "tatoeba.deu-eng.deu", "\n".join(deu) + "\n")
  write(tmp_path, "tatoeba.deu-eng.eng", "\n".join(eng) + "\n")
  return deu, eng


def test_tatoeba_accuracy_and_submission(tmp_path):
  deu, eng = _tatoeba(tmp_path)
  task = registry.get("tatoeba")
  source = DataSource(path=str(tmp_path))
  groups = {t: i for i, t in enumerate(deu)} | {t: i for i, t in enumerate(eng)}
  out = evaluate_retrieval(task, None, source, "de", embed=keyed_embedder(groups))
  assert out["predictions"] == [0, 1, 2, 3, 4] and out["scores"] == {"accuracy": 100.0}
  # Swap the vectors of two English sentences: those two queries now retrieve each other's pair.
  groups.update({"Yes.": 4, "No.": 3})
  out = evaluate_retrieval(task, None, source, "de", embed=keyed_embedder(groups))
  assert out["predictions"] == [0, 1, 2, 4, 3] and out["scores"] == {"accuracy": 60.0}
  assert task.submission_text(out["predictions"], out["result"]) == ("tsv", "0\n1\n2\n4\n3\n")
  features = task.featurize(out["result"], unigram(), FeatureSettings(max_length=16))
  assert len(features) == 10 and features.extra == {"num_queries": 5}
  assert len(task.source_files("test", "de", source)) == 2


def _bucc_split(tmp_path, split, n_gold, n_other):
  de, en, gold, groups = [], [], [], {}
  for i in range(n_gold + n_other):
    de.append((f"de-{split}{i:05d}", f"de {split} satz {i}"))
    en.append((f"en-{split}{i:05d}", f"en {split} sentence {i}"))
  for i in range(n_gold):
    gold.append((de[i][0], en[i][0]))
    groups[de[i][1]] = groups[en[i][1]] = i
  write(tmp_path, f"de-en.{split}.de", "".join(f"{a}\t{b}\n" for a, b in de))
  write(tmp_path, f"de-en.{split}.en", "".join(f"{a}\t{b}\n" for a, b in en))
  write(tmp_path, f"de-en.{split}.gold", "".join(f"{a}\t{b}\n" for a, b in gold))
  return groups, gold


def test_bucc_threshold_tuned_on_dev_applies_to_test(tmp_path):
  dev_groups, _ = _bucc_split(tmp_path, "dev", 6, 6)
  test_groups, test_gold = _bucc_split(tmp_path, "test", 5, 7)
  groups = {**dev_groups, **{t: g + 20 for t, g in test_groups.items()}}
  task = registry.get("bucc2018")
  source = DataSource(path=str(tmp_path), split_names={"dev": "dev", "test": "test"})
  embed = keyed_embedder(groups, dim=32, noise=0.05)
  out = evaluate_retrieval(task, None, source, "de", split="test", embed=embed)
  assert embed.calls == [24, 24]  # test, then dev for the threshold
  assert out["scores"]["f1"] == 100.0 and out["threshold"] == out["scores"]["threshold"] > 0
  ext, text = task.submission_text(out["predictions"], out["result"], out["threshold"])
  assert ext == "tsv" and sorted(text.splitlines()) == sorted(f"{a}\t{b}" for a, b in test_gold)
  dev = evaluate_retrieval(task, None, source, "de", split="dev", embed=keyed_embedder(groups, dim=32, noise=0.05))
  assert dev["scores"]["f1"] == 100.0  # dev: the threshold is tuned on its own gold


def test_bucc_drops_texts_shared_by_several_ids(tmp_path):
  write(tmp_path, "de-en.dev.de", "de-1\tgleich\nde-2\tgleich\nde-3\tanders\n")
  write(tmp_path, "de-en.dev.en", "en-1\tsame\nen-2\tother\n")
  write(tmp_path, "de-en.dev.gold", "de-1\ten-1\n")
  task = registry.get("bucc2018")
  result = task.read("dev", "de", DataSource(path=str(tmp_path)))
  assert task.texts(result) == (["gleich", "anders"], ["same", "other"])
  predictions = task.predict(keyed_embedder({"gleich": 0, "same": 0, "anders": 1, "other": 1})(
      ["gleich", "anders", "same", "other"]), None, result)
  assert set(predictions) == {("de-3", "en-2")}  # "gleich" belongs to two ids: dropped


def _xquad_r(lang, sentences, questions):
  context = " ".join(sentences)
  breaks, start = [], 0
  for s in sentences:
    breaks.append([start, start + len(s)])
    start += len(s) + 1
  qas = [{"id": qid, "question": q, "answers": [{"text": a, "answer_start": context.index(a)}]}
         for qid, q, a in questions]
  return {"data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas, "sentence_breaks": breaks,
                                                  "sentences": sentences}]}]}


def test_lareqa_pool_over_languages_map_at_20(tmp_path):
  en = write(tmp_path, "en.json", _xquad_r("en", ["The dog runs.", "The cat sleeps."],
                                           [("q1", "Who runs?", "dog"), ("q2", "Who sleeps?", "cat")]))
  de = write(tmp_path, "de.json", _xquad_r("de", ["Der Hund rennt.", "Die Katze schläft."],
                                           [("q1", "Wer rennt?", "Hund"), ("q2", "Wer schläft?", "Katze")]))
  source = DataSource(files={"test.en": str(en), "test.de": str(de)})
  task = registry.get("lareqa")
  groups = {"Who runs?": 1, "The dog runs.": 1, "Der Hund rennt.": 1, "Wer rennt?": 1,
            "Who sleeps?": 2, "The cat sleeps.": 2, "Die Katze schläft.": 2, "Wer schläft?": 2}
  out = evaluate_retrieval(task, None, source, "de", embed=keyed_embedder(groups))
  assert [q.guid for q in out["result"].examples] == ["q1_de", "q2_de"]
  assert len(out["result"].candidates) == 4
  assert out["scores"] == {"map@20": 100.0}
  assert [set(r[:2]) for r in out["predictions"]] == [{"en_1_0", "de_1_0"}, {"en_1_1", "de_1_1"}]
  # Swap the English answers' vectors. Pool order en_1_0, en_1_1, de_1_0, de_1_1; equal scores go
  # to the lower index. q1_de ranks en_1_1, de_1_0 (hit 1/2), en_1_0 (hit 2/3), de_1_1; q2_de
  # ranks en_1_0, de_1_1 (1/2), en_1_1 (2/3), de_1_0: AP = (1/2 + 2/3) / 2 = 7/12 each.
  groups.update({"The dog runs.": 2, "The cat sleeps.": 1})
  swapped = evaluate_retrieval(task, None, source, "de", embed=keyed_embedder(groups))
  assert swapped["predictions"] == [["en_1_1", "de_1_0", "en_1_0", "de_1_1"], ["en_1_0", "de_1_1", "en_1_1", "de_1_0"]]
  assert swapped["scores"] == {"map@20": pytest.approx(100 * 7 / 12)}
  ext, text = task.submission_text(out["predictions"], out["result"])
  assert ext == "json" and '"q1_de"' in text


def test_mewslix_mentions_against_entities(tmp_path):
  entities = [{"entity_id": f"Q{i}", "title": f"E{i}", "description": desc, "description_language": "en",
               "sentence_spans": [{"start": 0, "end": len(desc)}]}
              for i, desc in enumerate(["A city in Germany.", "A large cat.", "A river."])]
  text = "Ich war in Berlin. Der Tiger schlief."
  mentions = [{"context": {"language": "de", "text": text, "sentence_spans": [{"start": 0, "end": 18},
                                                                              {"start": 19, "end": len(text)}]},
               "mentions": [{"example_id": "m1", "entity_id": "Q0", "mention_span": {"start": 11, "end": 17,
                                                                                     "text": "Berlin"}},
                            {"example_id": "m2", "entity_id": "Q1", "mention_span": {"start": 23, "end": 28,
                                                                                     "text": "Tiger"}}]}]
  source = DataSource(files={"test.de": str(write(tmp_path, "wikinews_mentions-test.jsonl", mentions)),
                             "entities": str(write(tmp_path, "candidate_set_entities.jsonl", entities))})
  task = registry.get("mewslix")
  groups = {"Ich war in Berlin.": 0, "A city in Germany.": 0, "Der Tiger schlief.": 1, "A large cat.": 1}
  out = evaluate_retrieval(task, None, source, "de", embed=keyed_embedder(groups))
  assert out["scores"] == {"map@20": 100.0}
  assert [r[0] for r in out["predictions"]] == ["Q0", "Q1"]
  assert len(task.source_files("test", "de", source)) == 2


def test_retrieval_needs_local_files_and_matching_embeddings(tmp_path):
  with pytest.raises(Exception, match="local upstream files only"):
    registry.get("tatoeba").read("test", "de", DataSource(kind="hf", hf_id="x"))
  _tatoeba(tmp_path)
  task = registry.get("tatoeba")
  result = task.read("test", "de", DataSource(path=str(tmp_path)))
  with pytest.raises(DataError, match="3 embeddings for 5 queries and 5 candidates"):
    task.predict(np.zeros((3, 4)), None, result)
  assert default_retrieval_layer(24) == 14 and default_retrieval_layer(12) == 7


TATOEBA = SHARED_DATA / "tatoeba" / "v1"


@pytest.mark.skipif(not (TATOEBA / "tatoeba.deu-eng.deu").is_file(), reason="shared Tatoeba data absent")
def test_real_tatoeba_random_embeddings_match_a_numpy_reference():
  task = registry.get("tatoeba")
  source = DataSource(path=str(TATOEBA))
  result = task.read("test", "de", source)
  assert len(result.examples) == 1000
  rng = np.random.default_rng(0)
  emb = rng.normal(size=(2000, 8)).astype(np.float32)
  emb[1000:1500] = emb[:500] + 0.01 * rng.normal(size=(500, 8))  # the first 500 pairs are near-identical
  predictions = task.predict(emb, None, result)
  q = emb[:1000] / np.linalg.norm(emb[:1000], axis=1, keepdims=True)
  c = emb[1000:] / np.linalg.norm(emb[1000:], axis=1, keepdims=True)
  assert predictions == (q @ c.T).argmax(1).tolist()
  accuracy = task.score(predictions, result, "de")["accuracy"]
  assert accuracy == pytest.approx(100.0 * np.mean((q @ c.T).argmax(1) == np.arange(1000)))
  assert 50.0 <= accuracy < 52.0


def tiny_pretrained():
  """A tiny random XLM-R-style encoder with the tiny unigram tokenizer, built in JAX (no torch)."""
  import dataclasses

  import jax
  from flax import nnx

  from xtjax.models import registry as models
  from xtjax.models.init import abstract, place
  from xtjax.models.loading import Pretrained

  family, base = models.preset("xlmr-base")
  cfg = dataclasses.replace(base, vocab_size=len(unigram()), hidden_size=32, num_layers=2, num_heads=4,
                            intermediate_size=37, max_position_embeddings=66)
  rng = np.random.default_rng(0)
  # Host-side random weights placed on the mesh: no compiled init program to wait for.
  shapes = nnx.to_pure_dict(abstract(family, cfg)[1])
  params = jax.tree.map(lambda x: (0.2 * rng.normal(size=x.shape)).astype(np.float32), shapes)
  graphdef, state = place(family, cfg, params)
  return Pretrained(family, cfg, graphdef, state, unigram(), "tiny")


@pytest.mark.skipif(not (TATOEBA / "tatoeba.deu-eng.deu").is_file(), reason="shared Tatoeba data absent")
def test_real_tatoeba_with_a_tiny_model():
  from xtjax.models.embed import embed_sentences

  task, pre = registry.get("tatoeba"), tiny_pretrained()
  out = evaluate_retrieval(task, pre, DataSource(path=str(TATOEBA), limit=48), "de", batch_size=16, max_length=16)
  assert len(out["predictions"]) == 48
  # Reference: layer round(2 * 7 / 12) = 1, mean pooling, English sentences search the German ones.
  pairs = out["result"].examples
  eng, _ = embed_sentences(pre, [p.target for p in pairs], 1, "mean", 16, 16)
  deu, _ = embed_sentences(pre, [p.source for p in pairs], 1, "mean", 16, 16)
  eng /= np.linalg.norm(eng, axis=1, keepdims=True)
  deu /= np.linalg.norm(deu, axis=1, keepdims=True)
  sim = eng @ deu.T
  pred = np.asarray(out["predictions"])
  # Each prediction is a nearest German sentence (the tiny random model gives some sentences equal
  # embeddings, so ties may break either way; anything but a tie is a mismatch).
  np.testing.assert_allclose(sim[np.arange(48), pred], sim.max(1), rtol=0, atol=1e-6)
  assert np.mean(pred == sim.argmax(1)) > 0.9
  assert out["scores"]["accuracy"] == pytest.approx(100.0 * np.mean(pred == np.arange(48)))
