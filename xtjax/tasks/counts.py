"""Published example counts (XTREME / XTREME-R papers and dataset cards), kept in
`published_counts.tsv` next to this file, and the check of fetched data against them."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path

from xtjax.errors import DataError
from xtjax.tasks import registry

TABLE = Path(__file__).with_name("published_counts.tsv")


@functools.cache
def published_counts() -> dict[tuple[str, str, str], tuple[int, str]]:
  """{(task, split, language): (examples, source)}; split names are xtjax's (train/dev/test)."""
  out = {}
  lines = [line for line in TABLE.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
  for number, line in enumerate(lines[1:], 2):
    fields = line.split("\t")
    if len(fields) != 5 or not fields[3].isdigit():
      raise DataError(f"{TABLE}:{number}: expected task, split, language, count, source")
    key = (fields[0], fields[1], fields[2])
    if key in out:
      raise DataError(f"{TABLE}:{number}: {key} listed twice")
    out[key] = (int(fields[3]), fields[4])
  return out


def our_split(task: str, source_split: str) -> list[str]:
  """xtjax's split names that read `source_split` of the task's hub source (e.g. validation -> dev, test)."""
  row = registry.source_rows().get(task)
  names = row.split_names if row else {}
  ours = [ours for ours, theirs in names.items() if theirs == source_split]
  return ours or [source_split]


def manifest_mismatches(manifest: Mapping) -> list[str]:
  """Files of a `data download` MANIFEST whose example count differs from the published one."""
  table = published_counts()
  out = []
  for rel, entry in sorted(manifest["files"].items()):
    for split in our_split(entry["task"], entry["split"]):
      expected = table.get((entry["task"], split, entry["language"]))
      if expected is not None and entry["count"] and expected[0] != entry["count"]:
        out.append(f"{rel}: {entry['count']} examples, published {expected[0]} ({expected[1]})")
  return out
