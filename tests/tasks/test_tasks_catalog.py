"""`xtjax tasks`: every task with its head, metric, languages and default sources."""

import json

from xtjax.cli.main import main


def test_tasks_json_lists_heads_languages_and_the_fixed_sources(capsys):
  assert main(["tasks", "--json"]) == 0
  rows = {r["task"]: r for r in json.loads(capsys.readouterr().out)}
  assert rows["udpos"]["hf"]["id"] == "google/xtreme" and rows["udpos"]["hf"]["config"] == "udpos.{lang}"
  assert len(rows["udpos"]["languages"]["xtreme"]) == 33 and rows["udpos"]["head"] == "tagging"
  assert rows["mlqa"]["hf"]["config"] == "MLQA.{lang}.{lang}" and rows["mlqa"]["tfds"] == "mlqa/{lang}"
  assert rows["xquad"]["hf"]["id"] == "google/xquad" and rows["xquad"]["metric"] == "f1"
  assert rows["tydiqa"]["hf"]["id"] == "google-research-datasets/tydiqa"
  assert rows["siqa"]["hf"]["revision"] == "54c6a1f8cb6daf4f5abf24a601852612fb35eb25"
  assert rows["ccg"]["manual"] and rows["anli_plus"]["components"][-1] == "snli"
  script_only = {"universal_dependencies", "mlqa", "xquad", "tydiqa", "squad", "allenai/social_i_qa"}
  assert not script_only & {r["hf"]["id"] for r in rows.values() if r["hf"]}


def test_tasks_table_is_plain_text(capsys):
  assert main(["tasks"]) == 0
  out = capsys.readouterr().out
  assert out.splitlines()[0].startswith("task") and "google/xtreme (udpos.{lang})" in out
