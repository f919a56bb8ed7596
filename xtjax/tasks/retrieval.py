"""Retrieval with sentence embeddings, no head: Tatoeba and BUCC 2018 (XTREME), LAReQA and
Mewsli-X (XTREME-R).

`read` returns the reader's `ReadResult` (`examples` = queries or pairs, `candidates` = the pool).
`featurize` tokenises the texts to embed, queries first, then candidates (BUCC: unique texts of
each side, as XTREME embeds them), so `predict` takes embeddings with one row per feature.
`evaluate_retrieval` runs the whole path with a pretrained encoder (the trainer's zero-shot eval):
- tatoeba: the English sentences search the other language's (XTREME's run_retrieval.py); the
  prediction is the index of the nearest sentence; accuracy against the aligned line.
- bucc2018: ratio-margin mining (k=4); the F1-best threshold is tuned on the dev split and applied
  to test, as XTREME does; without gold (XTREME removes test gold) only predictions come back.
- lareqa: questions of one language against the pool of answer sentences of all 11 XQuAD-R
  languages; mAP@20 (the pool: every language with a `files["{split}.{lang}"]`, else all 11).
- mewslix: mention sentences against entity descriptions (`files["entities"]`, the candidate set);
  mAP@20.
Representations: `hidden_states[layer]` pooled by `pooling` (mean by default). The default layer
is round(7/12 of the depth): 14 of XLM-R large's 24 layers (XTREME, jiant), 7 for base models.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xtjax.data.formats import read_bucc, read_lareqa, read_mewslix_entities, read_mewslix_mentions, read_tatoeba
from xtjax.data.formats.records import ParallelPair, ReadResult
from xtjax.data.formats.tatoeba import tatoeba_lang3
from xtjax.data.sources import DataSource, local_path
from xtjax.errors import ConfigError, DataError
from xtjax.metrics import bucc_candidates, bucc_f1, bucc_mine, bucc_optimize_threshold, knn, map_at_k
from xtjax.tasks import featurize as fz
from xtjax.tasks.base import Features, FeatureSettings, Task
from xtjax.tasks.card import BenchmarkEntry, TaskCard, langs
from xtjax.tasks.registry import register
from xtjax.tasks.source_table import XTREME_SHA, SourceRow
from xtjax.tasks.submission_formats import LABELS, PAIRS, RANKED, Submission

# google-research/xtreme evaluate.py TASK2LANGS; XTREME-R's from scripts/run_tatoeba.sh,
# third_party/utils_mewslix.py and scripts/download_data.sh.
BUCC_LANGS = langs("de,fr,ru,zh")
TATOEBA_LANGS = langs("ar,he,vi,id,jv,tl,eu,ml,ta,te,af,nl,de,el,bn,hi,mr,ur,fa,fr,it,pt,es,bg,"
                      "ru,ja,ka,ko,th,sw,zh,kk,tr,et,fi,hu")
TATOEBA_R_LANGS = TATOEBA_LANGS + langs("az,lt,pl,uk,ro")
MEWSLIX_LANGS = langs("ar,de,en,es,fa,ja,pl,ro,ta,tr,uk")
LAREQA_LANGS = langs("ar,de,el,en,es,hi,ru,th,tr,vi,zh")

MAP_K = 20


def default_retrieval_layer(num_layers: int) -> int:
  return round(num_layers * 7 / 12)


def _unique(texts: Sequence[str], ids: Sequence[str]) -> tuple[list[str], list[str | None]]:
  """Unique texts in first-seen order, and each text's id (None when several ids share the text)."""
  by_text: dict[str, list[str]] = collections.defaultdict(list)
  for text, sid in zip(texts, ids):
    by_text[text].append(sid)
  unique = list(by_text)
  return unique, [by_text[t][0] if len(set(by_text[t])) == 1 else None for t in unique]


class RetrievalTask(Task):
  """A zero-shot retrieval task (head_type 'retrieval': the trainer builds no head for it)."""

  head_type = "retrieval"
  num_labels = 0

  def __init__(self, name: str, main_metric: str):
    self.name = name
    self.main_metric = main_metric

  def fingerprint(self) -> dict[str, Any]:
    return {"task": self.name}

  # ---- data -----------------------------------------------------------------------------------

  def read(self, split: str, language: str, source: DataSource) -> ReadResult:
    if source.kind != "local":
      raise ConfigError(f"task {self.name!r}: reads local upstream files only (data.kind: local)")
    if self.name == "tatoeba":
      result = read_tatoeba(local_path(source, split, language, self.name), language)
    elif self.name == "bucc2018":
      result = read_bucc(local_path(source, split, language, self.name), language, source.split_name(split))
    elif self.name == "lareqa":
      files = {lang: local_path(source, split, lang, self.name) for lang in self._pool_languages(split, source)}
      pool = read_lareqa(files)
      result = ReadResult(pool.path, [q for q in pool.examples if q.language == language], pool.skipped,
                          pool.counts, pool.candidates)
    else:  # mewslix
      mentions = read_mewslix_mentions(local_path(source, split, language, self.name))
      entities = read_mewslix_entities(local_path(source, "entities", language, self.name))
      result = ReadResult(mentions.path, [q for q in mentions.examples if q.language == language],
                          mentions.skipped, mentions.counts, entities.candidates)
    if source.limit is not None:
      result = ReadResult(result.path, result.examples[:source.limit], result.skipped, result.counts,
                          result.candidates)
    return result

  def _pool_languages(self, split: str, source: DataSource) -> tuple[str, ...]:
    """LAReQA's pool languages: those with a `files["{split}.{lang}"]` entry, else all eleven."""
    langs = [k.split(".", 1)[1] for k in source.files if k.startswith(f"{split}.")]
    return tuple(langs) or LAREQA_LANGS

  def source_files(self, split: str, language: str, source: DataSource) -> list[Path]:
    if source.kind != "local":
      return []
    if self.name == "lareqa":
      return [local_path(source, split, lang, self.name) for lang in self._pool_languages(split, source)]
    path = local_path(source, split, language, self.name)
    if self.name == "tatoeba":
      l3 = tatoeba_lang3(language)
      return [path / f"tatoeba.{l3}-eng.{l3}", path / f"tatoeba.{l3}-eng.eng"]
    if self.name == "bucc2018":
      prefix = f"{language}-en.{source.split_name(split)}"
      return sorted(path.glob(f"{prefix}.*"))
    if self.name == "mewslix":
      return [path, local_path(source, "entities", language, self.name)]
    return [path]

  def texts(self, result: ReadResult) -> tuple[list[str], list[str]]:
    """(query texts, candidate texts) in embedding order."""
    if self.name == "tatoeba":
      pairs: list[ParallelPair] = result.examples
      return [p.target for p in pairs], [p.source for p in pairs]
    if self.name == "bucc2018":
      src, _ = _unique([q.text for q in result.examples], [q.guid for q in result.examples])
      trg, _ = _unique([c.text for c in result.candidates], [c.guid for c in result.candidates])
      return src, trg
    queries = [q.context if self.name == "mewslix" and q.context else q.text for q in result.examples]
    return queries, [c.text for c in result.candidates]

  def featurize(self, result: ReadResult, tokenizer, settings: FeatureSettings) -> Features:
    """Token ids of every text to embed (for statistics; `evaluate_retrieval` embeds the texts)."""
    fz.require_fast(tokenizer, self.name)
    queries, candidates = self.texts(result)
    arrays, truncated, _ = fz.encode(tokenizer, queries + candidates, None, settings.max_length)
    return Features(arrays, np.arange(len(queries) + len(candidates)), {"num_queries": len(queries)},
                    {"truncated": int(truncated.sum())})

  def stats(self, result: ReadResult, features: Features) -> dict[str, Any]:
    out = fz.basic_stats(result.examples, features)
    out.update(queries=features.extra["num_queries"], candidates=len(features) - features.extra["num_queries"])
    return out

  # ---- evaluation -----------------------------------------------------------------------------

  def predict(self, outputs, features: Features | None, result: ReadResult, settings: FeatureSettings | None = None):
    """Embeddings [queries + candidates, D] (in `texts` order) -> predictions:
    tatoeba: nearest candidate index per query; bucc2018: {(src_id, trg_id): margin score} of the
    mined pairs; lareqa / mewslix: the top-20 candidate ids per query."""
    emb = np.asarray(outputs, np.float32)
    queries, candidates = self.texts(result)
    if emb.shape[0] != len(queries) + len(candidates):
      raise DataError(f"task {self.name!r}: {emb.shape[0]} embeddings for {len(queries)} queries and "
                      f"{len(candidates)} candidates")
    q_emb, c_emb = emb[:len(queries)], emb[len(queries):]
    if self.name == "tatoeba":
      _, nearest = knn(q_emb, c_emb, 1)
      return [int(i) for i in nearest[:, 0]]
    if self.name == "bucc2018":
      _, src_ids = _unique([q.text for q in result.examples], [q.guid for q in result.examples])
      _, trg_ids = _unique([c.text for c in result.candidates], [c.guid for c in result.candidates])
      return bucc_candidates(bucc_mine(q_emb, c_emb, k=4), src_ids, trg_ids)
    k = min(MAP_K, len(candidates))
    _, top = knn(q_emb, c_emb, k)
    return [[result.candidates[j].guid for j in row] for row in top]

  def score(self, predictions, result: ReadResult, language: str, threshold: float | None = None) -> dict[str, float]:
    """Official metrics; for BUCC, `threshold` (tuned on dev) or, when None, the F1-best one on
    this split's own gold (what XTREME reports for dev), returned as `threshold`."""
    if self.name == "tatoeba":
      correct = sum(int(p == i) for i, p in enumerate(predictions))
      return {"accuracy": 100.0 * correct / len(predictions)}
    if self.name == "bucc2018":
      gold = bucc_gold(result)
      if threshold is None:
        threshold = bucc_optimize_threshold(predictions, gold)
      return {**bucc_f1(predictions, gold, threshold), "threshold": float(threshold)}
    return {f"map@{MAP_K}": map_at_k(predictions, [q.relevant for q in result.examples], MAP_K)}

  def submission_text(self, predictions, result: ReadResult, threshold: float | None = None) -> tuple[str, str]:
    """tatoeba: one index per line (tsv); bucc2018: `src_id<TAB>trg_id` of the pairs scoring at least
    `threshold` (tsv); lareqa / mewslix: json {query id: [ranked candidate ids]}."""
    if self.name == "tatoeba":
      return "tsv", "".join(f"{p}\n" for p in predictions)
    if self.name == "bucc2018":
      if threshold is None:
        raise ConfigError("bucc2018: a submission needs the threshold tuned on dev")
      pairs = [pair for pair, score in predictions.items() if score >= threshold]
      return "tsv", "".join(f"{s}\t{t}\n" for s, t in pairs)
    import json

    return "json", json.dumps({q.guid: list(r) for q, r in zip(result.examples, predictions)}, ensure_ascii=False)


def bucc_gold(result: ReadResult) -> list[tuple[str, str]]:
  return [(q.guid, t) for q in result.examples for t in q.relevant]


def evaluate_retrieval(task: RetrievalTask, pretrained, source: DataSource, language: str, *, split: str = "test",
                       dev_split: str = "dev", layer: int | None = None, pooling: str = "mean", batch_size: int = 32,
                       max_length: int = 128, embed: Callable[[list[str]], np.ndarray] | None = None) -> dict:
  """Zero-shot retrieval of one language: read, embed, predict and (when gold exists) score.

  `pretrained` is an `xtjax.models.loading.Pretrained`; `embed` (texts -> [n, D]) replaces it in
  tests. Returns {"scores", "predictions", "result"} plus "threshold" for BUCC; scores are {}
  when the split has no gold (BUCC test as XTREME ships it).
  """
  if embed is None:
    from xtjax.models.embed import embed_sentences

    if layer is None:
      layer = default_retrieval_layer(pretrained.config.num_layers)

    def embed(texts):
      return embed_sentences(pretrained, texts, layer, pooling, batch_size, max_length)[0]

  def run(which: str):
    result = task.read(which, language, source)
    queries, candidates = task.texts(result)
    if not queries or not candidates:
      raise DataError(f"task {task.name!r} {which} {language}: nothing to retrieve "
                      f"({len(queries)} queries, {len(candidates)} candidates)")
    return result, task.predict(embed(queries + candidates), None, result)

  result, predictions = run(split)
  out: dict[str, Any] = {"result": result, "predictions": predictions, "scores": {}}
  if task.name == "bucc2018":
    threshold = None
    if split != dev_split:
      dev_result, dev_predictions = run(dev_split)
      threshold = bucc_optimize_threshold(dev_predictions, bucc_gold(dev_result))
    if bucc_gold(result):
      out["scores"] = task.score(predictions, result, language, threshold)
      threshold = out["scores"]["threshold"]
    out["threshold"] = threshold
  else:
    out["scores"] = task.score(predictions, result, language)
  return out


# ---- registrations: each task with its card ------------------------------------------------------

# Tatoeba (LASER) files use ISO 639-3 codes: tatoeba.deu-eng.deu.
TATOEBA_CODES = {
    "ar": "ara", "he": "heb", "vi": "vie", "id": "ind", "jv": "jav", "tl": "tgl", "eu": "eus", "ml": "mal",
    "ta": "tam", "te": "tel", "af": "afr", "nl": "nld", "de": "deu", "el": "ell", "bn": "ben", "hi": "hin",
    "mr": "mar", "ur": "urd", "fa": "pes", "fr": "fra", "it": "ita", "pt": "por", "es": "spa", "bg": "bul",
    "ru": "rus", "ja": "jpn", "ka": "kat", "ko": "kor", "th": "tha", "sw": "swh", "zh": "cmn", "kk": "kaz",
    "tr": "tur", "et": "est", "fi": "fin", "hu": "hun", "az": "aze", "lt": "lit", "pl": "pol", "uk": "ukr",
    "ro": "ron"}
# LASER's Tatoeba test files at the commit shared/data was checked against (SOURCES.tsv).
LASER = ("https://raw.githubusercontent.com/facebookresearch/LASER/74bc6ae7ffb7cba670fe0f428d0ede9f666fb821/"
         "data/tatoeba/v1")
BUCC_SOURCE = SourceRow(
    "bucc2018", BUCC_LANGS, None, splits={},
    url="https://comparable.limsi.fr/bucc2018/bucc2018-{lang}-en.training-gold.tar.bz2 "
        "https://comparable.limsi.fr/bucc2018/bucc2018-{lang}-en.sample-gold.tar.bz2",
    license="BUCC 2018 shared task (research use)",
    verified="google/xtreme bucc18.{lang} holds only gold pairs, not the mining pools: original files")
TATOEBA_SOURCE = SourceRow(
    "tatoeba", TATOEBA_R_LANGS, "google/xtreme", "tatoeba.{lang}",
    splits={"validation": TATOEBA_LANGS}, split_names={"test": "validation"},
    language_names=TATOEBA_CODES,
    url="https://github.com/facebookresearch/LASER/raw/main/data/tatoeba/v1/tatoeba.{code}-eng.{code,eng}",
    license="CC BY 2.0 FR",
    verified=f"{XTREME_SHA}: tatoeba.deu validation 1000, tatoeba.tel 234",
    fallback_url=" ".join(f"{LASER}/tatoeba.{{code}}-eng.{side}" for side in ("{code}", "eng")),
    target="tatoeba/tatoeba.{code}-eng.{code}", writer="tatoeba")
MEWSLIX_SOURCE = SourceRow(
    "mewslix", MEWSLIX_LANGS, None,
    url="google-research/google-research dense_representations_for_entity_retrieval/mel "
        "(get-mewsli-x.sh)", license="CC BY 3.0", manual="run get-mewsli-x.sh (Wikipedia dump)")
LAREQA_SOURCE = SourceRow(
    "lareqa", LAREQA_LANGS, None,
    url="https://raw.githubusercontent.com/google-research-datasets/lareqa/"
        "9bc8c7fb6dd8d01d72a05a93c2cb96882b0d299c/xquad-r/{lang}.json",
    verified="the commit shared/data's XQuAD-R was checked against (SOURCES.tsv)",
    license="CC BY-SA 4.0")

MAP = (f"map@{MAP_K}",)

register(RetrievalTask("bucc2018", "f1"), TaskCard(
    "bucc2018", BUCC_SOURCE, benchmarks={"xtreme": BenchmarkEntry(BUCC_LANGS, (), "retrieval")},
    score_metrics=("f1",),
    submission=Submission(PAIRS, ("{lang}-en.training.gold", "{lang}-en/{lang}-en.training.gold"))))
register(RetrievalTask("mewslix", MAP[0]), TaskCard(
    "mewslix", MEWSLIX_SOURCE, benchmarks={"xtreme-r": BenchmarkEntry(MEWSLIX_LANGS, ("mewslix",), "retrieval")},
    score_metrics=MAP, submission=Submission(RANKED)))
register(RetrievalTask("lareqa", MAP[0]), TaskCard(
    "lareqa", LAREQA_SOURCE, benchmarks={"xtreme-r": BenchmarkEntry(LAREQA_LANGS, ("squad_v1",), "retrieval")},
    score_metrics=MAP, submission=Submission(RANKED)))
# XTREME-R evaluates Tatoeba with the SQuAD-fine-tuned model (as Phang et al. did); XTREME with the
# pretrained encoder as is. The gold match of the i-th sentence is the i-th.
register(RetrievalTask("tatoeba", "accuracy"), TaskCard(
    "tatoeba", TATOEBA_SOURCE, benchmarks={"xtreme": BenchmarkEntry(TATOEBA_LANGS, (), "retrieval"),
                                           "xtreme-r": BenchmarkEntry(TATOEBA_R_LANGS, ("squad_v1",), "retrieval")},
    score_metrics=LABELS.metrics, submission=Submission(
        LABELS, ("tatoeba.{code}-eng.eng", "v1/tatoeba.{code}-eng.eng"), codes=TATOEBA_CODES, aligned=True)))
