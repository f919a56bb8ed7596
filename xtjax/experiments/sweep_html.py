"""The sweep report as one self-contained HTML page (jinja2): its header, the same `Table`s the markdown
renders as real tables, and every figure inline (base64 PNG) with its caption."""

from __future__ import annotations

import base64

from xtjax.experiments.sweep_report import Table


def to_html(head: dict[str, str], tables: list[Table], figs: dict[str, bytes], captions: dict[str, str]) -> str:
  import jinja2

  env = jinja2.Environment(loader=jinja2.PackageLoader("xtjax.experiments", "templates"),
                           autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
  figures = [{"name": name, "data": base64.b64encode(png).decode(), "caption": captions.get(name, name)}
             for name, png in figs.items()]
  return env.get_template("sweep_report.html.j2").render(head=head, tables=tables, figures=figures)
