"""XTREME and XTREME-R task definitions and Phang et al. (2020)'s intermediate tasks, as plain data.

Language lists follow google-research/xtreme: `evaluate.py`'s TASK2LANGS for XTREME (Hu et al.,
2020), and for XTREME-R (Ruder et al., 2021) the lists in `scripts/download_data.sh`,
`scripts/train_xcopa.sh`, `scripts/run_tatoeba.sh` and `third_party/utils_mewslix.py`. Every task is
zero-shot: trained on English data (`train`, in order), evaluated on `languages`.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  """One benchmark task.

  family: classification | multiple_choice | tagging | qa | retrieval.
  train: English training data used in order ((), no fine-tuning: the pretrained encoder is used
    as is). metrics: what is reported. score_metrics: averaged into the task's benchmark score
    (XTREME's evaluate.py averages exact match and F1 for QA). reader: the function in
    xtjax.data.formats that reads the evaluation files.
  """

  name: str
  dataset: str
  family: str
  languages: tuple[str, ...]
  train: tuple[str, ...]
  metrics: tuple[str, ...]
  score_metrics: tuple[str, ...]
  reader: str


def _langs(spec: str) -> tuple[str, ...]:
  return tuple(spec.split(","))


XNLI_LANGS = _langs("ar,bg,de,el,en,es,fr,hi,ru,sw,th,tr,ur,vi,zh")
PAWSX_LANGS = _langs("de,en,es,fr,ja,ko,zh")
PANX_LANGS = _langs("ar,he,vi,id,jv,ms,tl,eu,ml,ta,te,af,nl,en,de,el,bn,hi,mr,ur,fa,fr,it,pt,es,"
                    "bg,ru,ja,ka,ko,th,sw,yo,my,zh,kk,tr,et,fi,hu")
UDPOS_LANGS = _langs("af,ar,bg,de,el,en,es,et,eu,fa,fi,fr,he,hi,hu,id,it,ja,kk,ko,mr,nl,pt,ru,ta,"
                     "te,th,tl,tr,ur,vi,yo,zh")
BUCC_LANGS = _langs("de,fr,ru,zh")
TATOEBA_LANGS = _langs("ar,he,vi,id,jv,tl,eu,ml,ta,te,af,nl,de,el,bn,hi,mr,ur,fa,fr,it,pt,es,bg,"
                       "ru,ja,ka,ko,th,sw,zh,kk,tr,et,fi,hu")
XQUAD_LANGS = _langs("en,es,de,el,ru,tr,ar,vi,th,zh,hi")
MLQA_LANGS = _langs("en,es,de,ar,hi,vi,zh")
TYDIQA_LANGS = _langs("en,ar,bn,fi,id,ko,ru,sw,te")

# XTREME-R extensions.
XCOPA_LANGS = _langs("et,ht,id,it,qu,sw,ta,th,tr,vi,zh")
UDPOS_R_LANGS = UDPOS_LANGS + _langs("lt,pl,uk,wo,ro")
PANX_R_LANGS = PANX_LANGS + _langs("qu,pl,uk,az,lt,pa,gu,ro")
TATOEBA_R_LANGS = TATOEBA_LANGS + _langs("az,lt,pl,uk,ro")
MEWSLIX_LANGS = _langs("ar,de,en,es,fa,ja,pl,ro,ta,tr,uk")
LAREQA_LANGS = _langs("ar,de,el,en,es,hi,ru,th,tr,vi,zh")

ACCURACY = ("accuracy",)
# evaluate.py: seqeval span F1 for PAN-X and (also) UD-POS; set F1 over mined pairs for BUCC.
F1_PR = ("f1", "precision", "recall")
QA = ("exact_match", "f1")

_XTREME = (
    TaskSpec("xnli", "XNLI", "classification", XNLI_LANGS, ("mnli",), ACCURACY, ACCURACY,
             "read_xnli"),
    TaskSpec("pawsx", "PAWS-X", "classification", PAWSX_LANGS, ("paws_en",), ACCURACY, ACCURACY,
             "read_pawsx"),
    TaskSpec("udpos", "UD-POS (UD v2.5)", "tagging", UDPOS_LANGS, ("udpos_en",), F1_PR, ("f1",),
             "read_conllu"),
    TaskSpec("panx", "WikiANN (PAN-X)", "tagging", PANX_LANGS, ("panx_en",), F1_PR, ("f1",),
             "read_panx"),
    TaskSpec("xquad", "XQuAD", "qa", XQUAD_LANGS, ("squad_v1",), QA, QA, "read_squad"),
    TaskSpec("mlqa", "MLQA", "qa", MLQA_LANGS, ("squad_v1",), QA, QA, "read_squad"),
    TaskSpec("tydiqa", "TyDiQA-GoldP", "qa", TYDIQA_LANGS, ("tydiqa_goldp_en",), QA, QA,
             "read_squad"),
    TaskSpec("bucc2018", "BUCC 2018", "retrieval", BUCC_LANGS, (), F1_PR, ("f1",), "read_bucc"),
    TaskSpec("tatoeba", "Tatoeba", "retrieval", TATOEBA_LANGS, (), ACCURACY, ACCURACY,
             "read_tatoeba"),
)

# XTREME-R drops PAWS-X and BUCC, adds XCOPA, Mewsli-X and LAReQA, extends UD-POS (UD v2.7),
# PAN-X and Tatoeba, and evaluates Tatoeba with the SQuAD-fine-tuned model (as Phang et al. did).
_XTREME_R = (
    TaskSpec("xnli", "XNLI", "classification", XNLI_LANGS, ("mnli",), ACCURACY, ACCURACY,
             "read_xnli"),
    TaskSpec("xcopa", "XCOPA", "multiple_choice", XCOPA_LANGS, ("siqa", "copa_en"), ACCURACY,
             ACCURACY, "read_copa"),
    TaskSpec("udpos", "UD-POS (UD v2.7)", "tagging", UDPOS_R_LANGS, ("udpos_en",), F1_PR,
             ("f1",), "read_conllu"),
    TaskSpec("panx", "WikiANN (PAN-X)", "tagging", PANX_R_LANGS, ("panx_en",), F1_PR, ("f1",),
             "read_panx"),
    TaskSpec("xquad", "XQuAD", "qa", XQUAD_LANGS, ("squad_v1",), QA, QA, "read_squad"),
    TaskSpec("mlqa", "MLQA", "qa", MLQA_LANGS, ("squad_v1",), QA, QA, "read_squad"),
    TaskSpec("tydiqa", "TyDiQA-GoldP", "qa", TYDIQA_LANGS, ("tydiqa_goldp_en",), QA, QA,
             "read_squad"),
    TaskSpec("mewslix", "Mewsli-X", "retrieval", MEWSLIX_LANGS, ("mewslix_wikipedia_en",),
             ("map@20",), ("map@20",), "read_mewslix_mentions"),
    TaskSpec("lareqa", "LAReQA (XQuAD-R)", "retrieval", LAREQA_LANGS, ("squad_v1",), ("map@20",),
             ("map@20",), "read_lareqa"),
    TaskSpec("tatoeba", "Tatoeba", "retrieval", TATOEBA_R_LANGS, ("squad_v1",), ACCURACY, ACCURACY,
             "read_tatoeba"),
)

BENCHMARKS = {"xtreme": _XTREME, "xtreme-r": _XTREME_R}


def benchmark_tasks(name: str) -> dict[str, TaskSpec]:
  """The tasks that make up a benchmark's score, by task name ('xtreme' or 'xtreme-r')."""
  if name not in BENCHMARKS:
    raise ValueError(f"unknown benchmark {name!r}; choose one of {sorted(BENCHMARKS)}")
  return {task.name: task for task in BENCHMARKS[name]}


def benchmark_languages(name: str) -> tuple[str, ...]:
  """All languages a benchmark covers, sorted (40 for XTREME, 50 for XTREME-R)."""
  return tuple(sorted({lang for task in benchmark_tasks(name).values() for lang in task.languages}))


@dataclasses.dataclass(frozen=True)
class IntermediateTask:
  """An English intermediate task of Phang et al. (2020); `sources` pairs datasets with readers."""

  name: str
  family: str
  sources: tuple[tuple[str, str], ...]  # (dataset, reader in xtjax.data.formats)
  metrics: tuple[str, ...]


# "English intermediate-task training improves zero-shot cross-lingual transfer too"
# (Phang et al., 2020): the nine tasks trained between pretraining and target-task fine-tuning.
INTERMEDIATE_TASKS = {task.name: task for task in (
    IntermediateTask("anli_plus", "classification",
                     (("anli_r1", "read_anli"), ("anli_r2", "read_anli"), ("anli_r3", "read_anli"),
                      ("mnli", "read_mnli"), ("snli", "read_nli_jsonl")), ACCURACY),
    IntermediateTask("mnli", "classification", (("mnli", "read_mnli"),), ACCURACY),
    IntermediateTask("qqp", "classification", (("qqp", "read_qqp"),), ("accuracy", "f1")),
    IntermediateTask("squad_v1", "qa", (("squad_v1", "read_squad"),), QA),
    IntermediateTask("squad_v2", "qa", (("squad_v2", "read_squad"),), QA),
    IntermediateTask("hellaswag", "multiple_choice", (("hellaswag", "read_hellaswag"),), ACCURACY),
    IntermediateTask("commonsenseqa", "multiple_choice",
                     (("commonsenseqa", "read_commonsenseqa"),), ACCURACY),
    IntermediateTask("cosmosqa", "multiple_choice", (("cosmosqa", "read_cosmosqa"),), ACCURACY),
    IntermediateTask("ccg", "tagging", (("ccgbank", "read_supertags"),), ACCURACY),
)}
