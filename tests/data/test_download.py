"""`xtjax data download`: the plan (dry run), offline errors, resumable atomic writes and the
MANIFEST, against a local hub-layout mirror; CCGbank's manual step and checker."""

import json

import pytest

from hub_fixture import write_hub_repo
from test_hub_sources import _qa, _ud
from xtjax.cli.main import main
from xtjax.data.sources import DataSource
from xtjax.errors import DataError
from xtjax.tasks import download as dl
from xtjax.tasks import registry
from xtjax.tasks.download_plan import benchmark_task_names, plan
from xtjax.tasks.xtreme import benchmark_tasks, intermediate_tasks


def test_dry_run_lists_every_task_source_and_target(capsys):
  assert main(["data", "download", "--benchmark", "all", "--dry-run"]) == 0
  out = capsys.readouterr().out
  assert ("hf:google/xtreme@main udpos.German [test]\tper treebank (UD 2.5; UD 2.7 for XTREME-R's extra "
          "languages)\tudpos/de/test.conllu") in out
  assert "hf:google/xquad@main xquad.th [validation]" in out and "tatoeba/tatoeba.deu-eng.deu" in out
  assert "hf:lighteval/siqa@54c6a1f8cb6daf4f5abf24a601852612fb35eb25" in out
  items = plan("all")
  tasks = {i.task for i in items}
  for spec in [*benchmark_tasks("xtreme").values(), *benchmark_tasks("xtreme-r").values()]:
    assert spec.name in tasks
  assert set(intermediate_tasks()) <= tasks | {"anli_plus"}
  hub = [i for i in items if i.kind == "hf"]
  assert all("{" not in (i.hf_config or "") for i in hub)
  assert len({i.target for i in hub}) == len(hub)  # no two items write one file
  assert [i.kind for i in items if i.task == "ccg"] == ["manual"]


def test_plan_filters_and_names_unknown_tasks():
  items = plan("xtreme", ["udpos"], ["de", "th"])
  assert sorted((i.split, i.language) for i in items) == [("test", "de"), ("test", "th"), ("train", "de"),
                                                         ("validation", "de")]
  assert "squad_v1" in benchmark_task_names("xtreme")  # XQuAD / MLQA train on SQuAD v1.1
  with pytest.raises(Exception, match=r"--tasks hellaswag: not in benchmark 'xtreme'"):
    plan("xtreme", ["hellaswag"])


def test_offline_fails_with_one_line_naming_the_source(tmp_path, monkeypatch):
  monkeypatch.setenv("HF_HUB_OFFLINE", "1")
  with pytest.raises(DataError) as e:
    dl.download(plan("xtreme", ["xquad"], ["de"]), tmp_path)
  assert str(e.value).count("\n") == 0
  assert "https://huggingface.co/datasets/google/xquad (config xquad.de, split validation)" in str(e.value)


@pytest.fixture
def mirrors(tmp_path):
  xtreme = write_hub_repo(tmp_path / "xtreme", {
      "udpos.English": {s: [_ud(["The", "dog"], ["DET", "NOUN"])] for s in ("train", "validation", "test")},
      "udpos.German": {"train": [_ud(["Ein", "Hund"], ["DET", "NOUN"])], "validation": [_ud(["Ja"], ["INTJ"])],
                       "test": [_ud(["Der", "Hund", "bellt"], ["DET", "NOUN", "VERB"]), _ud(["Ja"], ["INTJ"])]},
      "tatoeba.deu": {"validation": [
          {"source_sentence": "Hallo Welt.\n", "target_sentence": "Hello world.\n", "source_lang": "deu",
           "target_lang": "eng"},
          {"source_sentence": "Danke.", "target_sentence": "Thanks.", "source_lang": "deu", "target_lang": "eng"}]},
  })
  xquad = write_hub_repo(tmp_path / "xquad", {
      f"xquad.{lang}": {"validation": [_qa(f"{lang}1", "Der Hund bellt.", "Hund")]} for lang in ("de", "en")})
  return {"google/xtreme": xtreme, "google/xquad": xquad}


def test_download_writes_readable_upstream_files_and_a_manifest(tmp_path, mirrors, monkeypatch):
  out = tmp_path / "out"
  items = plan("xtreme", ["udpos", "xquad", "tatoeba"], ["de", "en"])
  manifest = dl.download(items, out, hub_dirs=mirrors)
  german = registry.get("udpos").read("test", "de", DataSource(path=str(out / "udpos/{lang}/{split}.conllu")))
  assert [e.tokens for e in german] == [("Der", "Hund", "bellt"), ("Ja",)]
  assert german[0].labels == ("DET", "NOUN", "VERB")
  xquad = registry.get("xquad").read("test", "de", DataSource(path=str(out / "xquad/xquad.{lang}.json")))
  assert [(e.guid, e.answers) for e in xquad] == [("de1", (("Hund", 4),))]
  tatoeba = registry.get("tatoeba").read("test", "de", DataSource(path=str(out / "tatoeba")))
  assert len(tatoeba.examples) == 2
  on_disk = json.loads((out / "MANIFEST.json").read_text())
  assert on_disk["counts"]["udpos"]["test"] == {"de": 2, "en": 1}
  entry = on_disk["files"]["udpos/de/test.conllu"]
  assert entry["sha256"] == dl.sha256(out / "udpos/de/test.conllu") and entry["license"]
  assert entry["source"] == "hf:google/xtreme@main udpos.German [test]"
  assert entry["commit"] == f"mirror:{mirrors['google/xtreme']}" and entry["revision"] == "main"
  assert manifest["counts"] == on_disk["counts"]
  assert not list(out.rglob("*.tmp"))  # atomic: no temp files left

  # Resumable: a second run fetches nothing; a damaged file is fetched again.
  monkeypatch.setattr(dl, "hub_rows", lambda item, hub_dirs: pytest.fail(f"refetched {item.target}"))
  dl.download(items, out, hub_dirs=mirrors)
  (out / "xquad/xquad.de.json").write_text("{}")
  fetched = []
  monkeypatch.setattr(dl, "hub_rows", lambda item, hub_dirs: fetched.append(item.target) or [])
  resolved = []
  dl.download(items, out, resolve_commit=lambda hf_id, rev: resolved.append((hf_id, rev)) or "c0ffee")
  assert fetched == ["xquad/xquad.de.json"] and resolved == [("google/xquad", None)]  # once per dataset
  assert json.loads((out / "MANIFEST.json").read_text())["files"]["xquad/xquad.de.json"]["commit"] == "c0ffee"


def test_url_items_are_fetched_atomically_and_offline_named(tmp_path, monkeypatch):
  items = plan("xtreme", ["bucc2018"], ["de"])
  assert [i.kind for i in items] == ["url"]
  monkeypatch.setenv("HF_HUB_OFFLINE", "1")
  with pytest.raises(DataError, match=r"^offline: fetch bucc2018 \(de\) from https://comparable\.limsi\.fr/"):
    dl.download(items, tmp_path)
  monkeypatch.delenv("HF_HUB_OFFLINE")
  monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
  urls = []
  dl.download(items, tmp_path, fetch_url=lambda url, dest: urls.append(url) or _bucc_archive(url, dest))
  assert len(urls) == 2 and (tmp_path / "bucc2018" / "bucc2018-de-en.sample-gold.tar.bz2").is_file()
  assert (tmp_path / "bucc2018" / "bucc2018" / "de-en.sample.gold").read_text() == "de-1\ten-1\n"  # unpacked
  assert not list(tmp_path.rglob("*.tmp"))


def _bucc_archive(url, dest):
  """A bucc2018-de-en.<part>.tar.bz2 holding bucc2018/de-en.<split>.gold, as the real ones do."""
  import io
  import tarfile

  split = "sample" if "sample" in url else "training"
  data = b"de-1\ten-1\n"
  with tarfile.open(dest, "w:bz2") as tar:
    info = tarfile.TarInfo(f"bucc2018/de-en.{split}.gold")
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def test_download_through_the_cloud_branch(tmp_path, mirrors, monkeypatch):
  """gs:// output: whole-object writes and copies through etils.epath (here on a local folder taken
  for a remote one, since tests have no bucket): same files, same MANIFEST."""
  monkeypatch.setattr(dl, "_remote", lambda path: True)
  out = tmp_path / "bucket"
  items = plan("xtreme", ["xquad", "bucc2018"], ["de"])
  dl.download(items, str(out), hub_dirs=mirrors, fetch_url=_bucc_archive)
  assert json.loads((out / "xquad" / "xquad.de.json").read_text())["data"][0]["paragraphs"][0]["qas"][0]["id"] == "de1"
  assert (out / "bucc2018" / "bucc2018" / "de-en.training.gold").read_text() == "de-1\ten-1\n"
  manifest = dl.read_manifest(dl._folder(str(out)))
  assert manifest["files"]["xquad/xquad.de.json"]["sha256"] == dl.sha256(out / "xquad" / "xquad.de.json")
  with pytest.raises(DataError, match=r"check-ccg writes a local folder"):
    dl.check_ccgbank(tmp_path, "gs://bucket/data")


AUTO = ("ID=wsj_{s}01.1 PARSER=GOLD NUMPARSE=1\n"
        "(<T S[dcl] 0 2> (<L NP N N Dogs N>) (<L S[dcl]\\NP V V bark S[dcl]\\NP>) )\n")


def test_ccgbank_manual_step_and_checker(tmp_path, capsys):
  root = tmp_path / "ccgbank_1_1"
  for s in ["00", "23"] + [f"{i:02d}" for i in range(2, 22)]:
    (root / "data" / "AUTO" / s).mkdir(parents=True)
    (root / "data" / "AUTO" / s / f"wsj_{s}01.auto").write_text(AUTO.format(s=s))
  assert main(["data", "check-ccg", str(root), "--out", str(tmp_path / "out")]) == 0
  assert capsys.readouterr().out.strip() == "train: 20 sentences dev: 1 sentences test: 1 sentences"
  dev = registry.get("ccg").read("dev", "en", DataSource(path=str(tmp_path / "out/ccg/{split}.auto")))
  assert dev[0].labels == ("NP", "S[dcl]\\NP")
  (root / "data" / "AUTO" / "23" / "wsj_2301.auto").unlink()
  with pytest.raises(DataError, match=r"AUTO: CCGbank sections \['23'\] missing or empty \(split test\)"):
    dl.check_ccgbank(root, tmp_path / "out")


def test_cli_download_reports_counts_that_differ_from_the_published_ones(tmp_path, mirrors, capsys):
  args = ["data", "download", "--benchmark", "xtreme", "--tasks", "udpos", "--languages", "de", "--out",
          str(tmp_path / "out"), "--hub-mirror", f"google/xtreme={mirrors['google/xtreme']}"]
  assert main(args) == 1  # the two-sentence fixture is not UD 2.5's German
  captured = capsys.readouterr()
  assert "count differs: udpos/de/test.conllu: 2 examples, published 22458" in captured.err
  assert "MANIFEST.json: 3 files, 3 differ from published counts" in captured.out


def test_languages_the_hub_lacks_come_from_the_original_files():
  """XTREME-R's extra Tatoeba and UD-POS languages are not in google/xtreme."""
  items = plan("xtreme-r", ["tatoeba", "udpos"], ["az", "wo", "de"])
  urls = {(i.task, i.language): i.url for i in items if i.kind == "url"}
  assert sorted(urls) == [("tatoeba", "az"), ("udpos", "wo")]
  assert urls[("tatoeba", "az")].split() == [
      "https://raw.githubusercontent.com/facebookresearch/LASER/74bc6ae7ffb7cba670fe0f428d0ede9f666fb821/"
      f"data/tatoeba/v1/tatoeba.aze-eng.{side}" for side in ("aze", "eng")]
  assert urls[("udpos", "wo")].endswith("/11234/1-3424/ud-treebanks-v2.7.tgz")
  assert not [i for i in plan("xtreme", ["tatoeba"]) if i.kind != "hf"]  # XTREME's 36: all on the hub
