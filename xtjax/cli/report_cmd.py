"""`xtjax report RUN [RUN ...]`: one table comparing the zero-shot results of several runs;
`xtjax report SWEEP_DIR`: the sweep's paper-style report (markdown, CSV, HTML with plots)."""

from __future__ import annotations

import argparse


def register(sub) -> None:
  p = sub.add_parser("report", help="compare zero-shot results of runs, or report a sweep directory")
  p.add_argument("runs", nargs="+", help="a sweep directory, or pipeline directories (results.json) / train runs")
  p.add_argument("--csv", default=None, help="also write the table as CSV to this file")
  p.add_argument("--out", default=None, help="sweep reports: output folder (default: SWEEP_DIR/report)")
  p.add_argument("--tpu", default="v4", choices=("v4", "v5p", "v5e", "v6e"),
                 help="sweep reports: the TPU generation of the device-hours estimate (analytic FLOPs, 60-40%% MFU)")
  p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  from xtjax.experiments.sweep import SWEEP_FILE
  from xtjax.io_utils import as_path, write_text_atomic

  if len(args.runs) == 1 and (as_path(args.runs[0]) / SWEEP_FILE).exists():
    return _sweep_report(as_path(args.runs[0]), args)
  from xtjax.experiments.report import collect, to_csv, to_markdown

  tasks, rows = collect([as_path(r) for r in args.runs])
  print(to_markdown(tasks, rows))
  if args.csv:
    write_text_atomic(args.csv, to_csv(tasks, rows))
  return 0


def _sweep_report(sweep_dir, args) -> int:
  from xtjax.errors import XtjaxError
  from xtjax.experiments import sweep_report as sr
  from xtjax.experiments.sweep_html import to_html
  from xtjax.experiments.sweep_plots import CAPTIONS, plots
  from xtjax.io_utils import as_path, atomic_path, write_text_atomic

  records = sr.load_results(sweep_dir)
  if not records:
    raise XtjaxError(f"{sweep_dir}: no finished target runs yet (xtjax sweep status shows the cells)")
  out = as_path(args.out) if args.out else sweep_dir / "report"
  tables = sr.tables(records, args.tpu)
  md = sr.tables_markdown(tables)
  figs = plots(records)
  write_text_atomic(out / "report.md", md + "\n")
  write_text_atomic(out / "results.csv", sr.to_csv(records, args.tpu))
  write_text_atomic(out / "settings.csv", sr.settings_csv(records, args.tpu))
  if args.csv:
    write_text_atomic(args.csv, sr.to_csv(records, args.tpu))
  for name, png in figs.items():
    with atomic_path(out / name) as tmp:
      tmp.write_bytes(png)
  write_text_atomic(out / "report.html", to_html(sr.header(sweep_dir, records), tables, figs, CAPTIONS))
  print(md)
  print(f"\nwrote {out}/report.md, results.csv (a row per cell), settings.csv (a row per setting), report.html and "
        f"{len(figs)} plots")
  return 0
