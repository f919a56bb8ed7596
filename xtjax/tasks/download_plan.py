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
from xtjax.tasks import registry
from xtjax.tasks.source_table import ALL, SourceRow
from xtjax.tasks.xtreme import BENCHMARKS, benchmark_tasks, intermediate_tasks

BENCHMARK_CHOICES = ("xtreme", "xtreme-r", "intermediate", "all")
# Output files in the layouts and names the upstream releases use (a row's `target`; {split}: train,
# dev or test, e.g. squad/dev-v1.1.json, tydiqa/tydiqa.goldp.sw.dev.json as XTREME's download
# script names them).
UPSTREAM_SPLIT = {"validation": "dev"}
# Rows without a target are written as the hub's rows, one JSON object a line: read back with
# `data: {kind: hf, hf_id: json, path: DIR/<task>/{split}.{lang}.jsonl}` and the task's split names.
JSONL_TARGET = "{task}/{split}.{lang}.jsonl"


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
    for bench in BENCHMARKS if benchmark == "all" else (benchmark,):
      for spec in benchmark_tasks(bench).values():  # a target, then the English data it trains on
        names += [spec.name, *spec.train]
  if benchmark in ("intermediate", "all"):
    names += list(intermediate_tasks())
  rows = registry.source_rows()
  return [n for i, n in enumerate(names) if n in rows and n not in names[:i]]


def plan(benchmark: str, tasks: Sequence[str] | None = None, languages: Sequence[str] | None = None) -> list[FetchItem]:
  """Every file to fetch for `benchmark` (optionally only `tasks` / `languages`)."""
  names = benchmark_task_names(benchmark)
  if tasks:
    unknown = sorted(set(tasks) - set(names))
    if unknown:
      raise ConfigError(f"--tasks {','.join(unknown)}: not in benchmark {benchmark!r} ({', '.join(names)})")
    names = [n for n in names if n in tasks]
  items: list[FetchItem] = []
  rows = registry.source_rows()
  for name in names:
    for part in rows[name].components or (name,):
      items += [i for i in _row_items(rows[part], languages) if i not in items]
    items += _fallback_items(rows[name], _uncovered(rows[name], benchmark, languages, items))
  return items


def _uncovered(row: SourceRow, benchmark: str, languages: Sequence[str] | None, items: Sequence[FetchItem]
               ) -> list[str]:
  """Benchmark languages of a hub-sourced task that no planned item covers."""
  if row.hf_id is None:
    return []
  benches = BENCHMARKS if benchmark == "all" else (benchmark,) if benchmark in BENCHMARKS else ()
  entries = [registry.card(row.task).benchmarks.get(b) for b in benches]
  wanted = {lang for entry in entries if entry is not None for lang in entry.languages}
  covered = {i.language for i in items if i.task == row.task}
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
      if row.target:
        target = row.target.format(split=UPSTREAM_SPLIT.get(split, split), lang=lang, code=code)
      else:  # hub rows: the hub's split names, as the task's defaults read them back
        target = JSONL_TARGET.format(task=row.task, split=split, lang=lang)
      items.append(FetchItem(row.task, split, lang, "hf", target, row.writer, row.hf_id,
                             config, row.hf_revision, url=row.url, license=row.license))
  return items


def format_plan(items: Sequence[FetchItem]) -> str:
  """The dry-run table: task, split, language, source (with revision), license, target."""
  lines = ["task\tsplit\tlanguage\tsource\tlicense\ttarget"]
  lines += [f"{i.task}\t{i.split}\t{i.language}\t{i.source}\t{i.license}\t{i.target or '-'}" for i in items]
  return "\n".join(lines)
