"""Every shipped config's train, dev and evaluation sources exist in the source table (offline)."""

from pathlib import Path

import pytest

from test_configs_parse import CONFIGS, shipped_phases
from xtjax.data.sources import DataSource
from xtjax.evaluation.zero_shot import eval_languages
from xtjax.tasks import registry
from xtjax.tasks.source_check import source_problem

# Known gaps, each with its reason (none today).
KNOWN_GAPS: set[str] = set()


def _problems(path: Path, tmp_path: Path) -> list[str]:
  out = []
  for c in shipped_phases(path, tmp_path):
    for t in c.tasks:
      if t.name in KNOWN_GAPS:
        continue
      checks = [(t.data, t.train_split, "en"), (t.data, t.dev_split, t.dev_language)]
      # The languages zero-shot evaluation will use; a text-to-text form reads its base task's sources.
      checks += [(t.eval_data or t.data, t.eval_split, lang) for lang in eval_languages(c, t)]
      for source, split, lang in checks:
        why = source_problem(registry.get(t.name).source_name, source, split, lang)
        if why:
          out.append(f"{path.name} [{c.name}] {split}/{lang}: {why}")
  return out


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_shipped_config_sources_exist(path, tmp_path):
  problems = _problems(path, tmp_path)
  assert not problems, "\n".join(problems[:10])


def test_the_check_catches_missing_splits_and_languages():
  hf = DataSource(kind="hf")
  assert "no split 'train'" in source_problem("xquad", hf, "train", "en")  # XQuAD has no training split
  assert "holds no 'wo'" in source_problem("udpos", hf, "test", "wo")  # UD 2.5 in google/xtreme: no Wolof
  assert "holds no 'th'" in source_problem("udpos", hf, "train", "th")  # Thai PUD: test only
  assert "no hub default" in source_problem("bucc2018", hf, "test", "de")
  assert source_problem("xquad", DataSource(kind="hf", hf_id="rajpurkar/squad"), "train", "en") is None
  assert source_problem("mlqa", hf, "test", "hi") is None
  assert "not in the source table" in source_problem("xnli", DataSource(kind="hf", hf_id="xnli"), "test", "de")
