"""What `xtjax data download` fetches: one item per (task, split, language), from the source table.

No network here: the plan is what `--dry-run` prints. Each item names its source (hub parquet
id / config / revision / split, an original URL, or a manual step), its license and the file it
becomes under the output folder, in the upstream format xtjax reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from xtjax.data.sources import fill_pattern
from xtjax.errors import ConfigError
from xtjax.tasks.source_table import ALL, SOURCES, SourceRow
from xtjax.tasks.xtreme import BENCHMARKS, INTERMEDIATE_TASKS

# XTREME's English training data for each target (google-research/xtreme scripts/download_data.sh).
TRAINING_DATA = {"xnli": ("mnli",), "xquad": ("squad_v1",), "mlqa": ("squad_v1",), "lareqa": ("squad_v1",),
                 "xcopa": ("siqa", "copa")}
BENCHMARK_CHOICES = ("xtreme", "xtreme-r", "intermediate", "all")

# Output files in the layouts and names the upstream releases use ({split}: train, dev or test, e.g.
# squad/dev-v1.1.json, tydiqa/tydiqa.goldp.sw.dev.json as XTREME's download script names them).
UPSTREAM_SPLIT = {"validation": "dev"}
TARGETS = {
    "squad_v1": "squad/{split}-v1.1.json", "squad_v2": "squad/{split}-v2.0.json",
    "xquad": "xquad/xquad.{lang}.json", "mlqa": "mlqa/{split}/{split}-context-{lang}-question-{lang}.json",
    "tydiqa": "tydiqa/tydiqa.goldp.{lang}.{split}.json", "udpos": "udpos/{lang}/{split}.conllu",
    "panx": "panx/{split}-{lang}.tsv", "tatoeba": "tatoeba/tatoeba.{code}-eng.{code}",
}
# Tasks written as the hub's rows, one JSON object a line: read back with
# `data: {kind: hf, hf_id: json, path: DIR/<task>/{split}.{lang}.jsonl}` and the task's split names.
JSONL_TARGET = "{task}/{split}.{lang}.jsonl"
WRITERS = {"squad_v1": "squad", "squad_v2": "squad", "xquad": "squad", "mlqa": "squad", "tydiqa": "squad",
           "udpos": "conllu", "panx": "panx", "tatoeba": "tatoeba"}


@dataclasses.dataclass(frozen=True)
class FetchItem:
  task: str
  split: str  # the source's split name
  language: str
  kind: str  # hf | url | manual
  target: str  # relative to the output folder ("" for a manual step)
  writer: str = "jsonl"
  hf_id: str | None = None
  hf_config: str | None = None
  hf_revision: str | None = None
  url: str = ""
  license: str = ""
  note: str = ""

  @property
  def source(self) -> str:
    if self.kind == "hf":
      return f"hf:{self.hf_id}@{self.hf_revision or 'main'} {self.hf_config or '-'} [{self.split}]"
    return f"{self.kind}:{self.url}" if self.kind == "url" else f"manual: {self.note}"

  def where(self) -> str:
    """Where to fetch it from, in one phrase (for errors)."""
    if self.kind == "hf":
      return f"https://huggingface.co/datasets/{self.hf_id} (config {self.hf_config}, split {self.split})"
    return self.url


def benchmark_task_names(benchmark: str) -> list[str]:
  """The tasks (targets and the English data they train on) of a benchmark, in table order."""
  if benchmark not in BENCHMARK_CHOICES:
    raise ConfigError(f"--benchmark {benchmark!r}: choose one of {list(BENCHMARK_CHOICES)}")
  names: list[str] = []
  if benchmark in ("xtreme", "xtreme-r", "all"):
    for bench in ("xtreme", "xtreme-r") if benchmark == "all" else (benchmark,):
      for spec in BENCHMARKS[bench]:
        names += [spec.name, *TRAINING_DATA.get(spec.name, ())]
  if benchmark in ("intermediate", "all"):
    names += list(INTERMEDIATE_TASKS)
  return [n for i, n in enumerate(names) if n in SOURCES and n not in names[:i]]


def plan(benchmark: str, tasks: Sequence[str] | None = None, languages: Sequence[str] | None = None) -> list[FetchItem]:
  """Every file to fetch for `benchmark` (optionally only `tasks` / `languages`)."""
  names = benchmark_task_names(benchmark)
  if tasks:
    unknown = sorted(set(tasks) - set(names))
    if unknown:
      raise ConfigError(f"--tasks {','.join(unknown)}: not in benchmark {benchmark!r} ({', '.join(names)})")
    names = [n for n in names if n in tasks]
  items: list[FetchItem] = []
  for name in names:
    for part in SOURCES[name].components or (name,):
      items += [i for i in _row_items(SOURCES[part], languages) if i not in items]
    items += _fallback_items(SOURCES[name], _uncovered(name, benchmark, languages, items))
  return items


def _uncovered(name: str, benchmark: str, languages: Sequence[str] | None, items: Sequence[FetchItem]) -> list[str]:
  """Benchmark languages of a hub-sourced task that no planned item covers."""
  if SOURCES[name].hf_id is None:
    return []
  benches = ("xtreme", "xtreme-r") if benchmark == "all" else (benchmark,) if benchmark in BENCHMARKS else ()
  wanted = {lang for b in benches for spec in BENCHMARKS[b] if spec.name == name for lang in spec.languages}
  covered = {i.language for i in items if i.task == name}
  return sorted(lang for lang in wanted - covered if not languages or lang in languages)


def _fallback_items(row: SourceRow, missing: Sequence[str]) -> list[FetchItem]:
  """Original files for languages the hub source lacks, or a manual step naming them."""
  if not missing:
    return []
  if not row.fallback_url:
    return [FetchItem(row.task, "-", ",".join(missing), "manual", "", url=row.url, license=row.license,
                      note=f"no source in the table for {row.task} {','.join(missing)}")]
  if "{lang}" not in row.fallback_url and "{code}" not in row.fallback_url:
    return [FetchItem(row.task, "-", ",".join(missing), "url", f"{row.task}/", url=row.fallback_url,
                      license=row.license)]
  return [FetchItem(row.task, "-", lang, "url", f"{row.task}/", license=row.license,
                    url=row.fallback_url.replace("{code}", row.language_names.get(lang, lang)).replace("{lang}", lang))
          for lang in missing]


def _row_items(row: SourceRow, languages: Sequence[str] | None) -> list[FetchItem]:
  langs = [lang for lang in row.languages if not languages or lang in languages]
  if row.manual:
    return [FetchItem(row.task, "-", "-", "manual", "", url=row.url, license=row.license, note=row.manual)]
  if row.hf_id is None:  # original files only (BUCC's mining pools, ANLI's zip, LAReQA)
    per_lang = "{lang}" in row.url
    return [FetchItem(row.task, "-", lang, "url", f"{row.task}/", url=row.url.replace("{lang}", lang),
                      license=row.license) for lang in (langs if per_lang else ["-"])]
  items = []
  for split, held in row.splits.items():
    for lang in langs:
      if held != ALL and lang not in held:
        continue
      config = fill_pattern(row.hf_config, split, row.language_names.get(lang, lang)) if row.hf_config else None
      code = row.language_names.get(lang, lang)
      if row.task in TARGETS:
        target = TARGETS[row.task].format(split=UPSTREAM_SPLIT.get(split, split), lang=lang, code=code)
      else:  # hub rows: the hub's split names, as the task's defaults read them back
        target = JSONL_TARGET.format(task=row.task, split=split, lang=lang)
      items.append(FetchItem(row.task, split, lang, "hf", target, WRITERS.get(row.task, "jsonl"), row.hf_id,
                             config, row.hf_revision, url=row.url, license=row.license))
  return items


def format_plan(items: Sequence[FetchItem]) -> str:
  """The dry-run table: task, split, language, source (with revision), license, target."""
  lines = ["task\tsplit\tlanguage\tsource\tlicense\ttarget"]
  lines += [f"{i.task}\t{i.split}\t{i.language}\t{i.source}\t{i.license}\t{i.target or '-'}" for i in items]
  return "\n".join(lines)
