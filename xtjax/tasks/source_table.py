"""Where every task's data comes from: one table with its provenance.

Each row names the Hugging Face hub parquet dataset (id, config pattern, revision, splits and the
languages each split holds), the TFDS name, the original upstream URL and the license. Tasks take
their default `hf_id` / `hf_config` / `tfds_name` from here (`hub_defaults`); a config may still
override them. `verified` says how a row was checked (hub dataset card / commit, TFDS catalog).

Hub ids are the canonical ones (no redirects) and every default is a parquet repository:
`datasets` >= 4 cannot run loading scripts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from xtjax.data.sources import DataSource, HubDefaults, with_hub_defaults
from xtjax.tasks.xtreme import (MLQA_LANGS, PANX_R_LANGS, PAWSX_LANGS, TATOEBA_LANGS,
                                TATOEBA_R_LANGS, TYDIQA_LANGS, UDPOS_LANGS, XCOPA_LANGS, XNLI_LANGS,
                                XQUAD_LANGS)

EN = ("en",)
ALL = "*"  # every language of the row

# google/xtreme names UD treebank configs by the language's English name (udpos.German).
UDPOS_NAMES = {
    "af": "Afrikaans", "ar": "Arabic", "bg": "Bulgarian", "de": "German", "el": "Greek", "en": "English",
    "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian", "fi": "Finnish", "fr": "French",
    "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian", "id": "Indonesian", "it": "Italian", "ja": "Japanese",
    "kk": "Kazakh", "ko": "Korean", "mr": "Marathi", "nl": "Dutch", "pt": "Portuguese", "ru": "Russian",
    "ta": "Tamil", "te": "Telugu", "th": "Thai", "tl": "Tagalog", "tr": "Turkish", "ur": "Urdu",
    "vi": "Vietnamese", "yo": "Yoruba", "zh": "Chinese"}
# UD 2.5 treebanks in google/xtreme without training data (test only), and without a dev split.
_UDPOS_NO_TRAIN = ("th", "tl", "yo")
_UDPOS_NO_DEV = _UDPOS_NO_TRAIN + ("kk",)
# Tatoeba (LASER) files use ISO 639-3 codes: tatoeba.deu-eng.deu.
TATOEBA_CODES = {
    "ar": "ara", "he": "heb", "vi": "vie", "id": "ind", "jv": "jav", "tl": "tgl", "eu": "eus", "ml": "mal",
    "ta": "tam", "te": "tel", "af": "afr", "nl": "nld", "de": "deu", "el": "ell", "bn": "ben", "hi": "hin",
    "mr": "mar", "ur": "urd", "fa": "pes", "fr": "fra", "it": "ita", "pt": "por", "es": "spa", "bg": "bul",
    "ru": "rus", "ja": "jpn", "ka": "kat", "ko": "kor", "th": "tha", "sw": "swh", "zh": "cmn", "kk": "kaz",
    "tr": "tur", "et": "est", "fi": "fin", "hu": "hun", "az": "aze", "lt": "lit", "pl": "pol", "uk": "ukr",
    "ro": "ron"}
TYDIQA_ID_PREFIX = {"en": "english", "ar": "arabic", "bn": "bengali", "fi": "finnish", "id": "indonesian",
                    "ko": "korean", "ru": "russian", "sw": "swahili", "te": "telugu"}

# LASER's Tatoeba test files at the commit shared/data was checked against (SOURCES.tsv).
_LASER = ("https://raw.githubusercontent.com/facebookresearch/LASER/74bc6ae7ffb7cba670fe0f428d0ede9f666fb821/"
          "data/tatoeba/v1")
_XTREME_SHA = "google/xtreme parquet (Feb 2024 conversion by the hub, one folder per config)"


@dataclasses.dataclass(frozen=True)
class SourceRow:
  """One task's data source.

  splits: the hub's split names -> the languages (our codes) that split holds, or ALL.
  split_names / tfds_split_names: our split names (train/dev/test) -> the source's.
  language_names: our language code -> the token the source uses in `hf_config` / `tfds_name`.
  url: the original upstream files (what `data download` writes, and XTREME's own source).
  """

  task: str
  languages: tuple[str, ...]
  hf_id: str | None = None
  hf_config: str | None = None
  hf_revision: str | None = None
  splits: Mapping[str, tuple[str, ...] | str] = dataclasses.field(default_factory=dict)
  split_names: Mapping[str, str] = dataclasses.field(default_factory=dict)
  language_names: Mapping[str, str] = dataclasses.field(default_factory=dict)
  id_prefixes: Mapping[str, str] = dataclasses.field(default_factory=dict)
  tfds_name: str | None = None
  tfds_split_names: Mapping[str, str] = dataclasses.field(default_factory=dict)
  url: str = ""
  license: str = ""
  manual: str = ""  # non-empty: the data cannot be redistributed; how to obtain it
  verified: str = ""
  components: tuple[str, ...] = ()  # a task read from several rows (ANLI+): those rows' tasks
  # Original files for benchmark languages the hub source lacks ({lang} / {code} filled in).
  fallback_url: str = ""

  def hub_split(self, split: str) -> str:
    return self.split_names.get(split, split)

  def has(self, split: str, language: str) -> bool:
    """Whether the hub source holds `split` (our name) in `language`."""
    held = self.splits.get(self.hub_split(split))
    return held is not None and language in self.languages and (held == ALL or language in held)

  def hub_defaults(self) -> HubDefaults:
    return HubDefaults(self.hf_id, self.hf_config, self.tfds_name, dict(self.split_names),
                       dict(self.tfds_split_names), dict(self.id_prefixes), self.hf_revision,
                       dict(self.language_names))


_DEV = {"dev": "validation"}
_EVAL_ONLY = {"dev": "validation", "test": "validation"}
_TVT = {"train": ALL, "validation": ALL, "test": ALL}
_TV = {"train": ALL, "validation": ALL}

SOURCES: dict[str, SourceRow] = {row.task: row for row in (
    # ---- XTREME / XTREME-R targets --------------------------------------------------------------
    SourceRow("xnli", XNLI_LANGS, "facebook/xnli", "{lang}", splits=_TVT, split_names=_DEV,
              tfds_name="xnli", tfds_split_names=_DEV,
              url="https://dl.fbaipublicfiles.com/XNLI/XNLI-1.0.zip (dev/test); MNLI for train",
              license="CC BY-NC 4.0",
              verified="hub commit b8dd5d7 'Convert dataset to Parquet (#10)'; per-language parquet folders"),
    SourceRow("pawsx", PAWSX_LANGS, "google-research-datasets/paws-x", "{lang}", splits=_TVT, split_names=_DEV,
              tfds_name="paws_x_wiki/{lang}", tfds_split_names=_DEV,
              url="https://storage.googleapis.com/paws/pawsx/x-final.tar.gz", license="custom (free use, cite)",
              verified="not verified on the hub here; TFDS paws_x_wiki configs de..zh (tfds 4.9.10); "
                       "google/xtreme PAWS-X.<lang> is a verified parquet copy (validation/test 2000)"),
    SourceRow("udpos", UDPOS_LANGS, "google/xtreme", "udpos.{lang}",
              splits={"train": tuple(c for c in UDPOS_LANGS if c not in _UDPOS_NO_TRAIN),
                      "validation": tuple(c for c in UDPOS_LANGS if c not in _UDPOS_NO_DEV), "test": ALL},
              split_names=_DEV, language_names=UDPOS_NAMES,
              url="https://lindat.mff.cuni.cz/repository/xmlui/handle/11234/1-3105 (UD 2.5)",
              license="per treebank (UD 2.5; UD 2.7 for XTREME-R's extra languages)",
              verified=f"{_XTREME_SHA}: udpos.German train 166849 / validation 19233 / test 22458, "
                       "udpos.Tagalog test only, udpos.Kazakh train 31 / test 1047",
              # XTREME-R's extra languages (lt pl uk wo ro) are UD 2.7 treebanks, not in google/xtreme.
              fallback_url="https://lindat.mff.cuni.cz/repository/xmlui/bitstream/handle/11234/1-3424/"
                           "ud-treebanks-v2.7.tgz"),
    SourceRow("panx", PANX_R_LANGS, "unimelb-nlp/wikiann", "{lang}", splits=_TVT, split_names=_DEV,
              tfds_name="wikiann/{lang}", tfds_split_names=_DEV,
              url="https://www.amazon.com/clouddrive/share/d3KGCRCIYwhKJF0H3eWA26hjg2ZCRhjpEQtDL70FSBN "
                  "(AmazonPhotos.zip)",
              license="ODC-BY",
              verified="hub commits 'Add <lang> data files' (parquet; ms train 20000 / 1000 / 1000)"),
    SourceRow("xquad", XQUAD_LANGS, "google/xquad", "xquad.{lang}", splits={"validation": ALL},
              split_names=_EVAL_ONLY, tfds_name="xquad/{lang}", tfds_split_names={"test": "test"},
              url="https://github.com/google-deepmind/xquad/raw/master/xquad.{lang}.json", license="CC BY-SA 4.0",
              verified="hub commit 'Convert dataset to Parquet' (xquad.{lang}/validation-*.parquet); "
                       "TFDS catalog xquad/{lang}"),
    SourceRow("mlqa", MLQA_LANGS, "google/xtreme", "MLQA.{lang}.{lang}", splits={"validation": ALL, "test": ALL},
              split_names=_DEV, tfds_name="mlqa/{lang}", tfds_split_names=_DEV,
              url="https://dl.fbaipublicfiles.com/MLQA/MLQA_V1.zip", license="CC BY-SA 3.0",
              verified=f"{_XTREME_SHA}: MLQA.zh.zh 5.64k rows, MLQA.en.en 12.7k (validation + test)"),
    SourceRow("tydiqa", TYDIQA_LANGS, "google-research-datasets/tydiqa", "secondary_task", splits=_TV,
              split_names=_EVAL_ONLY, id_prefixes=TYDIQA_ID_PREFIX, tfds_name="tydi_qa/goldp",
              tfds_split_names=_EVAL_ONLY,
              url="https://storage.googleapis.com/tydiqa/v1.1/tydiqa-goldp-v1.1-{train,dev}.json",
              license="Apache 2.0",
              verified="hub commit da78f23 'Convert dataset to Parquet' (secondary_task train/validation)"),
    SourceRow("bucc2018", ("de", "fr", "ru", "zh"), None, splits={},
              url="https://comparable.limsi.fr/bucc2018/bucc2018-{lang}-en.training-gold.tar.bz2 "
                  "https://comparable.limsi.fr/bucc2018/bucc2018-{lang}-en.sample-gold.tar.bz2",
              license="BUCC 2018 shared task (research use)",
              verified="google/xtreme bucc18.{lang} holds only gold pairs, not the mining pools: original files"),
    SourceRow("tatoeba", TATOEBA_R_LANGS, "google/xtreme", "tatoeba.{lang}",
              splits={"validation": TATOEBA_LANGS}, split_names={"test": "validation"},
              language_names=TATOEBA_CODES,
              url="https://github.com/facebookresearch/LASER/raw/main/data/tatoeba/v1/tatoeba.{code}-eng.{code,eng}",
              license="CC BY 2.0 FR",
              verified=f"{_XTREME_SHA}: tatoeba.deu validation 1000, tatoeba.tel 234",
              fallback_url=" ".join(f"{_LASER}/tatoeba.{{code}}-eng.{side}" for side in ("{code}", "eng"))),
    SourceRow("xcopa", XCOPA_LANGS, "cambridgeltl/xcopa", "{lang}", splits={"validation": ALL, "test": ALL},
              split_names=_DEV, url="https://github.com/cambridgeltl/xcopa/tree/master/data", license="CC BY 4.0",
              verified="hub commit 042f789 'Convert dataset to Parquet (#3)': one config per language, "
                       "validation 100 / test 500"),
    SourceRow("mewslix", ("ar", "de", "en", "es", "fa", "ja", "pl", "ro", "ta", "tr", "uk"), None,
              url="google-research/google-research dense_representations_for_entity_retrieval/mel "
                  "(get-mewsli-x.sh)", license="CC BY 3.0", manual="run get-mewsli-x.sh (Wikipedia dump)"),
    SourceRow("lareqa", ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh"), None,
              url="https://raw.githubusercontent.com/google-research-datasets/lareqa/"
                  "9bc8c7fb6dd8d01d72a05a93c2cb96882b0d299c/xquad-r/{lang}.json",
              verified="the commit shared/data's XQuAD-R was checked against (SOURCES.tsv)",
              license="CC BY-SA 4.0"),
    # ---- English training data and Phang et al.'s intermediate tasks ------------------------------
    SourceRow("squad_v1", EN, "rajpurkar/squad", None, splits=_TV, split_names=_EVAL_ONLY,
              tfds_name="squad/v1.1", tfds_split_names=_DEV,
              url="https://rajpurkar.github.io/SQuAD-explorer/dataset/{train,dev}-v1.1.json",
              license="CC BY-SA 4.0",
              verified="hub viewer rajpurkar/squad plain_text: train 87.6k / validation 10.6k"),
    SourceRow("squad_v2", EN, "rajpurkar/squad_v2", None, splits=_TV, split_names=_EVAL_ONLY,
              tfds_name="squad/v2.0", tfds_split_names=_DEV,
              url="https://rajpurkar.github.io/SQuAD-explorer/dataset/{train,dev}-v2.0.json",
              license="CC BY-SA 4.0", verified="not verified here (assumed like rajpurkar/squad)"),
    SourceRow("mnli", EN, "nyu-mll/glue", "mnli",
              splits={"train": ALL, "validation_matched": ALL, "test_matched": ALL},
              split_names={"dev": "validation_matched", "test": "test_matched"}, tfds_name="multi_nli",
              tfds_split_names={"dev": "validation_matched"},
              url="https://cims.nyu.edu/~sbowman/multinli/multinli_1.0.zip", license="OANC / CC BY-SA 3.0 (mixed)",
              verified="not verified here (nyu-mll/glue is the canonical GLUE parquet repo)"),
    SourceRow("qqp", EN, "nyu-mll/glue", "qqp", splits=_TVT, split_names=_DEV, tfds_name="glue/qqp",
              tfds_split_names=_DEV, url="https://dl.fbaipublicfiles.com/glue/data/QQP-clean.zip",
              license="Quora terms (non-commercial)",
              verified="TFDS glue/qqp config (tfds 4.9.10); hub not verified here"),
    SourceRow("anli_plus", EN, None, url="https://dl.fbaipublicfiles.com/anli/anli_v1.0.zip "
                                     "https://nlp.stanford.edu/projects/snli/snli_1.0.zip",
              license="CC BY-NC 4.0 (ANLI), CC BY-SA 4.0 (SNLI)",
              components=("anli_r1", "anli_r2", "anli_r3", "mnli", "snli")),
    *(SourceRow(f"anli_r{r}", EN, "facebook/anli", "plain_text",
                splits={f"{s}_r{r}": ALL for s in ("train", "dev", "test")},
                split_names={"train": f"train_r{r}", "dev": f"dev_r{r}", "test": f"test_r{r}"},
                url="https://dl.fbaipublicfiles.com/anli/anli_v1.0.zip", license="CC BY-NC 4.0",
                verified="hub commit 'Convert dataset to Parquet' (plain_text/{train,dev,test}_r1..3)")
      for r in (1, 2, 3)),
    SourceRow("snli", EN, "stanfordnlp/snli", "plain_text", splits=_TVT, split_names=_DEV,
              url="https://nlp.stanford.edu/projects/snli/snli_1.0.zip", license="CC BY-SA 4.0",
              verified="hub commit 5e5f553 'Convert dataset to Parquet' (train 550152 / validation / test 10000)"),
    SourceRow("hellaswag", EN, "Rowan/hellaswag", None, hf_revision="refs/convert/parquet", splits=_TVT,
              split_names=_DEV, tfds_name="hellaswag", tfds_split_names=_DEV,
              url="https://github.com/rowanz/hellaswag/tree/master/data (disabled by a DMCA claim on "
                  "2026-09-14: the hub copy is the source)", license="MIT",
              verified="hub viewer Rowan/hellaswag (train 39.9k, validation 10k, test 10k); sgl-project/sglang "
                       "#39481: validation 10042 rows; the parquet conversion branch is pinned (main held a script)"),
    SourceRow("commonsenseqa", EN, "tau/commonsense_qa", None, splits=_TVT, split_names=_DEV,
              url="https://s3.amazonaws.com/commensenseqa/train_rand_split.jsonl", license="MIT",
              verified="not verified (no card in the search corpus); assumed parquet"),
    SourceRow("cosmosqa", EN, "allenai/cosmos_qa", None, hf_revision="refs/convert/parquet", splits=_TVT,
              split_names=_DEV, tfds_name="cosmos_qa", tfds_split_names=_DEV,
              url="https://github.com/wilburOne/cosmosqa/tree/master/data", license="CC BY 4.0",
              verified="not verified on the hub (script repo assumed; the parquet conversion branch is pinned)"),
    SourceRow("siqa", EN, "lighteval/siqa", None, hf_revision="54c6a1f8cb6daf4f5abf24a601852612fb35eb25",
              splits=_TV, split_names=_EVAL_ONLY,
              url="https://storage.googleapis.com/ai2-mosaic/public/socialiqa/socialiqa-train-dev.zip",
              license="CC BY 4.0",
              verified="hub card lighteval/siqa@54c6a1f: parquet, train 33410 / validation 1954, fields "
                       "context question answerA-C label ('1'-'3'); allenai/social_i_qa is script-only"),
    SourceRow("copa", EN, "aps/super_glue", "copa", hf_revision="refs/convert/parquet", splits=_TVT,
              split_names=_DEV, tfds_name="super_glue/copa", tfds_split_names=_DEV,
              url="https://dl.fbaipublicfiles.com/glue/superglue/data/v2/COPA.zip", license="BSD 2-Clause",
              verified="hub parquet-converter commits (copa/{train,validation,test}/0000.parquet); main holds a "
                       "loading script; TFDS super_glue/copa"),
    SourceRow("ccg", EN, None, url="https://catalog.ldc.upenn.edu/LDC2005T13", license="LDC user agreement",
              manual="CCGbank 1.1 is licensed by the LDC (LDC2005T13): obtain it there, then run "
                     "`xtjax data check-ccg DIR --out OUT` on it (writes OUT/ccg/{train,dev,test}.auto)"),
)}


def source_row(task: str) -> SourceRow:
  if task not in SOURCES:
    raise KeyError(f"no source row for task {task!r}; known: {sorted(SOURCES)}")
  return SOURCES[task]


def hub_defaults(task: str) -> HubDefaults:
  """The task's default hub / TFDS source (what `data: {kind: hf}` or `{kind: tfds}` reads)."""
  return source_row(task).hub_defaults()


def row_for_hub(hf_id: str, hf_config: str | None) -> SourceRow | None:
  """The table row of a hub dataset (id and config pattern), for checking a config's sources."""
  for row in SOURCES.values():
    if row.hf_id == hf_id and (hf_config is None or row.hf_config in (None, hf_config)):
      return row
  return None


def source_problem(task: str, source: DataSource, split: str, language: str) -> str | None:
  """Why `task` cannot read `split` in `language` from `source` (hub / TFDS, resolved against this
  table with the task's defaults), or None when the table says it exists. Local files are not
  checked here (they are read, and named when missing, at run time)."""
  if source.kind == "local":
    return None
  row = SOURCES.get(task)
  if row is not None and row.components:
    return next((why for c in row.components if (why := source_problem(c, source, split, language))), None)
  resolved = with_hub_defaults(source, row.hub_defaults() if row else None)
  if resolved.kind == "tfds":
    return None if resolved.tfds_name else f"task {task!r}: no TFDS default; set data.tfds_name"
  if resolved.hf_id is None:
    return f"task {task!r}: no hub default (manual or original-URL source: {row.url if row else '?'})"
  own = row is not None and (row.hf_id, row.hf_config) == (resolved.hf_id, resolved.hf_config)
  hub = row if own else row_for_hub(resolved.hf_id, resolved.hf_config)
  if hub is None:
    return f"task {task!r}: hub dataset {resolved.hf_id!r} config {resolved.hf_config!r} is not in the source table"
  hub_split = resolved.split_name(split)
  if hub_split not in hub.splits:
    return (f"task {task!r}: {resolved.hf_id} has no split {hub_split!r} (our {split!r}); it has "
            f"{sorted(hub.splits)}")
  held = hub.splits[hub_split]
  if language not in hub.languages or (held != ALL and language not in held):
    return f"task {task!r}: {resolved.hf_id} split {hub_split!r} holds no {language!r} data"
  return None
