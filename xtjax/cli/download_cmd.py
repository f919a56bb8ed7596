"""`xtjax data download` (every task's data in the formats xtjax reads, with a MANIFEST.json) and
`xtjax data check-ccg` (the licensed CCGbank, supplied by the user). Registered under `xtjax data`."""

from __future__ import annotations

import argparse

from xtjax.errors import ConfigError


def register_data(data_sub) -> None:
  from xtjax.tasks.download_plan import BENCHMARK_CHOICES

  p = data_sub.add_parser("download", help="fetch XTREME / XTREME-R / intermediate-task data (hub parquet, "
                          "original URLs) into upstream formats with MANIFEST.json")
  p.add_argument("--benchmark", required=True, choices=BENCHMARK_CHOICES)
  p.add_argument("--tasks", help="comma-separated task names (default: every task of the benchmark)")
  p.add_argument("--languages", help="comma-separated language codes (default: every language)")
  p.add_argument("--out", help="output folder, local or gs:// (resumable: files already fetched are kept)")
  p.add_argument("--dry-run", action="store_true", help="print every source, revision and target; no network")
  p.add_argument("--hub-mirror", action="append", default=[], metavar="ID=DIR",
                 help="read hub dataset ID from a local folder in the hub's parquet layout")
  p.set_defaults(func=run_download)
  c = data_sub.add_parser("check-ccg", help="check a CCGbank 1.1 copy and write OUT/ccg/{train,dev,test}.auto")
  c.add_argument("ccgbank", help="CCGbank root (or its data/AUTO folder), obtained from the LDC (LDC2005T13)")
  c.add_argument("--out", required=True)
  c.set_defaults(func=run_check_ccg)


def _csv(value: str | None) -> list[str] | None:
  return [v for v in value.split(",") if v] if value else None


def run_download(args: argparse.Namespace) -> int:
  import sys

  from xtjax.tasks.counts import manifest_mismatches
  from xtjax.tasks.download import download
  from xtjax.tasks.download_plan import format_plan, plan

  items = plan(args.benchmark, _csv(args.tasks), _csv(args.languages))
  if args.dry_run:
    print(format_plan(items))
    return 0
  if not args.out:
    raise ConfigError("data download: --out DIR is required (or --dry-run)")
  mirrors = {}
  for pair in args.hub_mirror:
    hf_id, sep, folder = pair.partition("=")
    if not sep:
      raise ConfigError(f"--hub-mirror {pair!r}: expected ID=DIR")
    mirrors[hf_id] = folder
  manifest = download(items, args.out, hub_dirs=mirrors)
  for task, step in manifest.get("manual", {}).items():
    print(f"{task}: manual step: {step['step']}")
  mismatches = manifest_mismatches(manifest)
  for line in mismatches:
    print(f"count differs: {line}", file=sys.stderr)
  print(f"{args.out}/MANIFEST.json: {len(manifest['files'])} files, {len(mismatches)} differ from published counts")
  return 1 if mismatches else 0


def run_check_ccg(args: argparse.Namespace) -> int:
  from xtjax.tasks.download import check_ccgbank

  counts = check_ccgbank(args.ccgbank, args.out)
  print(" ".join(f"{split}: {n} sentences" for split, n in counts.items()))
  return 0
