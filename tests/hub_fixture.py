"""A local dataset repository in the hub's parquet layout, so `data: {kind: hf}` resolves and reads
offline: one folder per config holding `{split}-00000-of-00001.parquet`, and a README whose YAML
`configs:` block maps each config's splits to its files (what the hub's parquet conversion writes,
e.g. google/xtreme's `udpos.German/test-*`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def write_hub_repo(root: Path, configs: dict[str, dict[str, list[dict]]]) -> Path:
  """configs: {config name: {split: rows}} -> a repository directory `datasets.load_dataset` reads."""
  root.mkdir(parents=True, exist_ok=True)
  lines = ["---", "configs:"]
  for name, splits in configs.items():
    lines += [f"- config_name: {name}", "  data_files:"]
    for split, rows in splits.items():
      folder = root / name
      folder.mkdir(exist_ok=True)
      pq.write_table(pa.Table.from_pylist(rows), folder / f"{split}-00000-of-00001.parquet")
      lines += [f"  - split: {split}", f"    path: {name}/{split}-*"]
  (root / "README.md").write_text("\n".join(lines + ["---", ""]), encoding="utf-8")
  return root


def use_local_repo(monkeypatch, task, repo: Path) -> None:
  """Point a registered task's hub default at `repo`, keeping the table's config pattern, language
  names, split names and revision (what the test exercises)."""
  monkeypatch.setattr(task, "hub", dataclasses.replace(task.hub, hf_id=str(repo), hf_revision=None))
