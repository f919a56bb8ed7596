"""What `xtjax tasks` shows: every registered task with its head, metric, languages and sources."""

from __future__ import annotations

from typing import Any

from xtjax.tasks import registry


def _languages(name: str) -> dict[str, list[str]]:
  """Evaluation languages per benchmark; for a task in none, the languages it trains on."""
  card = registry.card(name)
  out = {bench: list(entry.languages) for bench, entry in card.benchmarks.items()}
  if not out and (card.intermediate or card.source):
    out["train"] = list(card.source.languages) if card.source else ["en"]
  return out


def task_rows() -> list[dict[str, Any]]:
  """One row per registered task (sorted by name)."""
  rows = []
  for name in registry.names():
    task = registry.get(name)
    src = registry.card(task.source_name).source
    rows.append({
        "task": name, "head": task.head_type, "metric": task.main_metric,
        "languages": _languages(task.source_name),
        "hf": None if src is None or src.hf_id is None else {
            "id": src.hf_id, "config": src.hf_config, "revision": src.hf_revision,
            "splits": {k: v if isinstance(v, str) else list(v) for k, v in src.splits.items()},
            "split_names": dict(src.split_names)},
        "tfds": None if src is None or src.tfds_name is None else src.tfds_name,
        "url": src.url if src else "", "license": src.license if src else "",
        "manual": src.manual if src else "", "components": list(src.components) if src else []})
  return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
  """A plain-text table: task, head, metric, language counts and the default sources."""
  w = max([len(r["task"]) for r in rows] + [4]) + 2
  lines = [f"{'task':<{w}}{'head':<17}{'metric':<13}{'languages':<22}hub (config) / tfds"]
  for r in rows:
    langs = " ".join(f"{k}:{len(v)}" for k, v in r["languages"].items()) or "-"
    hub = f"{r['hf']['id']} ({r['hf']['config'] or '-'})" if r["hf"] else "-"
    if r["components"]:
      hub = "components: " + " ".join(r["components"])
    if r["hf"] and r["hf"]["revision"]:
      hub += f"@{r['hf']['revision'][:12]}"
    where = f"{hub} / {r['tfds'] or '-'}" + (f"  [manual: {r['manual']}]" if r["manual"] else "")
    lines.append(f"{r['task']:<{w}}{r['head']:<17}{r['metric']:<13}{langs:<22}{where}")
  return "\n".join(lines)
