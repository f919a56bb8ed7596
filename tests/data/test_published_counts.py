"""The published counts table against the real data in shared/data (skipped where absent) and
against a download's MANIFEST."""

import os
from pathlib import Path

import pytest

from xtjax.data.formats import read_conllu, read_squad
from xtjax.data.sources import DataSource
from xtjax.tasks import registry
from xtjax.tasks.counts import manifest_mismatches, published_counts
from xtjax.tasks.retrieval import TATOEBA_CODES

TABLE = published_counts()
# ../shared/data next to the checkout; XTJAX_SHARED_DATA points elsewhere (e.g. from a worktree).
SHARED_DATA = Path(os.environ.get("XTJAX_SHARED_DATA")
                   or Path(__file__).resolve().parents[2].parent / "shared" / "data")


def _squad(path):
  return len(read_squad(path).examples)


def _task(name, split, lang, path):
  return lambda: len(registry.get(name).read(split, lang, DataSource(path=str(path))) if name != "tatoeba"
                     else registry.get(name).read(split, lang, DataSource(path=str(path))).examples)


def _present():
  """(task, split, language) -> (path, count function) for the data found in shared/data."""
  out = {}
  for (task, split, lang) in TABLE:
    if task in ("xquad", "lareqa") and split == "test":
      path = SHARED_DATA / ("xquad/xquad.{}.json" if task == "xquad" else "xquad_r/xquad-r/{}.json").format(lang)
      out[(task, split, lang)] = (path, lambda p=path: _squad(p))
    elif (task, split) == ("squad_v1", "dev"):
      path = SHARED_DATA / "squad" / "dev-v1.1.json"
      out[(task, split, lang)] = (path, lambda p=path: _squad(p))
    elif task == "tatoeba":
      path = SHARED_DATA / "tatoeba" / "v1" / f"tatoeba.{TATOEBA_CODES[lang]}-eng.eng"
      out[(task, split, lang)] = (path, _task("tatoeba", split, lang, SHARED_DATA / "tatoeba" / "v1"))
    elif task == "xcopa":
      path = SHARED_DATA / "xcopa" / "data" / lang / f"{'val' if split == 'dev' else 'test'}.{lang}.jsonl"
      out[(task, split, lang)] = (path, _task("xcopa", split, lang, path))
    elif (task, split, lang) == ("udpos", "test", "th"):
      path = SHARED_DATA / "ud" / "UD_Thai-PUD" / "th_pud-ud-test.conllu"
      out[(task, split, lang)] = (path, lambda p=path: len(read_conllu(p, multiword="fused").examples))
    elif (task, split) == ("cosmosqa", "dev"):
      path = SHARED_DATA / "cosmosqa" / "valid.csv"
      out[(task, split, lang)] = (path, _task("cosmosqa", split, lang, path))
  return out


PRESENT = _present()


@pytest.mark.parametrize("key", sorted(PRESENT), ids=lambda k: "-".join(k))
def test_shared_data_counts_equal_the_published_ones(key):
  path, count = PRESENT[key]
  if not path.exists():
    pytest.skip(f"{path} absent")
  expected, source = TABLE[key]
  assert count() == expected, f"{path}: {key} published {expected} ({source})"


def test_the_table_covers_every_xtreme_target_and_reads_cleanly():
  tasks = {task for task, _, _ in TABLE}
  assert {"xnli", "pawsx", "udpos", "panx", "xquad", "mlqa", "tydiqa", "tatoeba", "xcopa"} <= tasks
  assert sum(TABLE[("tydiqa", "test", lang)][0] for lang in "en ar bn fi id ko ru sw te".split()) == 5077
  assert TABLE[("mlqa", "test", "en")][0] + TABLE[("mlqa", "dev", "en")][0] == 12738  # google/xtreme: 12.7k rows


def test_manifest_counts_are_checked_against_the_table():
  manifest = {"files": {
      "xquad/xquad.de.json": {"task": "xquad", "split": "validation", "language": "de", "count": 1190},
      "udpos/de/test.conllu": {"task": "udpos", "split": "test", "language": "de", "count": 977},
      "mlqa/validation/x.json": {"task": "mlqa", "split": "validation", "language": "hi", "count": 507}}}
  assert manifest_mismatches(manifest) == [
      "udpos/de/test.conllu: 977 examples, published 22458 (google/xtreme dataset card (num_examples) udpos.German)"]
